"""The post-deploy smoke test: open a real stream, check the answers, fail loudly.

Runs as the CDK trigger Lambda (``lambda_handler``) right after the endpoint is created, and from a
shell as ``bidistream smoke``. Modes:

* ``echo``: send a text part and a binary part; each must come back with the same bytes and the same
  DataType (fragments are joined first). Then close the input; the stream must end cleanly.
* ``transcribe``: stream the bundled speech clip as binary PCM (faster than real time), then
  ``{"type":"CloseStream"}``; at least one ``Results`` message must carry a non-empty transcript.
  Works for Deepgram Nova-3 (Marketplace) and for the container's own ``v1/listen`` model.
* ``speak``: send one sentence as ``Speak`` + ``Flush`` (Deepgram's streaming text to speech); a
  ``Metadata`` message and binary audio must arrive before ``Flushed``, and the audio, measured in the
  encoding and rate the query asks for, must last as long as the sentence takes to say (see
  ``speech_bounds``). Then ``Close``: the stream must end without more audio. Tested against the
  container's own ``v1/speak`` model; written to Deepgram's streaming TTS messages, so Aura fits too.

Transient failures (503, 500, ``InternalStreamFailure``, a refused or reset connection) are retried
with backoff within the budget: right after an endpoint turns InService the router may still refuse
streams for a moment. Definite failures (424 from the container, a wrong echo, no transcript, a
Deepgram ``Error`` message, audio of implausible length, access denied) fail at once.

Two Lambda entry points run the check: ``lambda_handler`` (the post-deploy CDK trigger) and
``canary_handler`` (the scheduled streaming canary, which publishes the outcome as CloudWatch metrics in
the embedded metric format). Stdlib and SDK only: the Lambda bundle holds the SDK, awscrt and this
package, nothing else. (The trigger also calls the SageMaker and CloudFormation control planes with
boto3, which every Lambda Python runtime has.)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Final

from aws_sdk_sagemaker_runtime_http2.models import ModelStreamError  # type: ignore[import-untyped]

from bidistream.audio import CHUNK_SECONDS, paced, read_wav
from bidistream.client import (
    BINARY,
    UTF8,
    BidiStream,
    Part,
    StreamTarget,
    Timeouts,
    open_stream,
    send_while_receiving,
)
from bidistream.errors import ExitCode, describe
from bidistream.speech import CLOSE, FORMATS, SpeechFormat, SpeechFormatError, speak_message
from bidistream.transcript import parse_results

TRANSCRIBE_PATH: Final = "v1/listen"
TRANSCRIBE_QUERY: Final = "model=nova-3&encoding=linear16&sample_rate=16000"
TRANSCRIBE_SPEED: Final = 2.0  # times real time: quick, and both models keep up with it
CLOSE_STREAM: Final = '{"type":"CloseStream"}'
SPEAK_PATH: Final = "v1/speak"
SPEAK_QUERY: Final = "model=aura-2-thalia-en&encoding=linear16&sample_rate=24000"
SPEAK_SENTENCE: Final = "This is a smoke test of the speech endpoint, one short sentence spoken aloud."
FLUSH: Final = '{"type":"Flush"}'
# Speaking rates a voice may plausibly use, in words per minute: stock TTS voices speak at 150-190
# (the container's espeak-ng voices say the sentence above in about 5.0 s, 168 wpm), people from about
# 100 (slow, deliberate) to 250 (fast talk). Audio shorter than the fastest rate allows is cut off;
# longer than the slowest rate plus the pauses is not this sentence.
SPEAKING_RATE_WPM: Final = (90, 300)
# Silence a voice may add on top: leading and trailing silence, the pause at a comma and at the end.
SPEECH_PAUSE_SECONDS: Final = 2.0
# What a Deepgram streaming TTS server sends as text; anything else (our own Speak coming back from an
# echo, a Results from a speech-to-text model) means the path is not a text-to-speech model.
SPEAK_SERVER_MESSAGES: Final = ("Metadata", "Flushed", "Warning", "Error")
SPEECH_CLIP: Final = "speech-sample.wav"
# Failures worth another attempt: the service or its router not ready yet, or the connection refused.
TRANSIENT: Final = frozenset(
    {ExitCode.SERVICE_UNAVAILABLE, ExitCode.INTERNAL_STREAM_FAILURE, ExitCode.CANNOT_CONNECT}
)
FIRST_BACKOFF_SECONDS: Final = 1.0
MAX_BACKOFF_SECONDS: Final = 8.0
# The control-plane calls of the trigger (DescribeEndpoint, DescribeStacks), each bounded; the
# Lambda's timeout adds CONTROL_PLANE_SECONDS to the smoke budget (stacks/smoke_test/infrastructure.py).
CONTROL_PLANE_CONNECT_SECONDS: Final = 5
CONTROL_PLANE_READ_SECONDS: Final = 10
CONTROL_PLANE_ATTEMPTS: Final = 2
CONTROL_PLANE_SECONDS: Final = (
    2 * CONTROL_PLANE_ATTEMPTS * (CONTROL_PLANE_CONNECT_SECONDS + CONTROL_PLANE_READ_SECONDS)
)
# The only stack status in which the trigger skips: CloudFormation re-runs the previous check while the
# endpoint still serves the config being rolled back.
ROLLBACK_STATUS: Final = "UPDATE_ROLLBACK_IN_PROGRESS"
# The streaming canary's metrics (embedded metric format, one data point per run).
CANARY_NAMESPACE: Final = "BidiStream/Canary"
CANARY_SUCCESS_METRIC: Final = "StreamSuccess"
CANARY_FAILURE_METRIC: Final = "StreamFailure"


@dataclass(frozen=True)
class SmokeReport:
    """The outcome of one smoke test."""

    ok: bool
    mode: str
    endpoint_name: str
    elapsed_seconds: float
    parts_sent: int
    parts_received: int
    detail: str
    attempts: int = 1

    def summary(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        tries = f" attempts={self.attempts}" if self.attempts > 1 else ""
        return (
            f"smoke {verdict} endpoint={self.endpoint_name} mode={self.mode} "
            f"elapsed={self.elapsed_seconds:.2f}s sent={self.parts_sent} received={self.parts_received}"
            f"{tries}: {self.detail}"
        )


class SmokeTestFailed(Exception):
    """The endpoint did not answer as expected; the message says what was expected and what came back."""

    def __init__(self, report: SmokeReport) -> None:
        super().__init__(report.summary())
        self.report = report


class _Mismatch(Exception):
    pass


class _Transient(Exception):
    """A failure worth another attempt; ``detail`` is its one-line description."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def run_smoke(
    endpoint_name: str,
    *,
    region: str,
    mode: str = "echo",
    endpoint_uri: str | None = None,
    ca_file: str | None = None,
    invocation_path: str | None = None,
    query_string: str | None = None,
    target_variant: str | None = None,
    budget_seconds: float = 60.0,
) -> SmokeReport:
    """Run the check; returns the report when it passes, raises ``SmokeTestFailed`` when it does not.

    Transient failures are retried with backoff (1, 2, 4, 8, 8... seconds) while the budget lasts; the
    report of a failure after retries names the attempts and the last error.
    """
    if mode not in CHECKS:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    check = CHECKS[mode]
    target = StreamTarget(
        endpoint_name=endpoint_name,
        region=region,
        endpoint_uri=endpoint_uri,
        ca_file=ca_file,
        invocation_path=invocation_path or check.path,
        query_string=query_string or check.query,
        target_variant=target_variant,
    )
    started = time.monotonic()
    deadline = started + budget_seconds
    counts = [0, 0]
    attempts = 0

    def report(ok: bool, detail: str) -> SmokeReport:
        elapsed = time.monotonic() - started
        return SmokeReport(ok, mode, endpoint_name, elapsed, counts[0], counts[1], detail, attempts)

    backoff = FIRST_BACKOFF_SECONDS
    while True:
        attempts += 1
        try:
            detail = await _attempt(check.run, target, deadline - time.monotonic(), counts)
        except TimeoutError:
            raise SmokeTestFailed(
                report(False, f"no complete answer within the {budget_seconds:g}s budget")
            ) from None
        except _Mismatch as mismatch:
            raise SmokeTestFailed(report(False, str(mismatch))) from None
        except _Transient as transient:
            if time.monotonic() + backoff >= deadline:
                raise SmokeTestFailed(
                    report(False, f"{transient.detail} (still failing after {attempts} attempts)")
                ) from None
            await asyncio.sleep(backoff)  # a retry delay, not synchronisation
            backoff = min(2 * backoff, MAX_BACKOFF_SECONDS)
            continue
        except Exception as error:
            raise SmokeTestFailed(report(False, describe(error)[1])) from error
        return report(True, detail)


async def _attempt(
    check: Callable[[BidiStream, StreamTarget], Awaitable[str]],
    target: StreamTarget,
    budget: float,
    counts: list[int],
) -> str:
    """One stream and one check within ``budget`` seconds; transient failures raise ``_Transient``."""
    if budget <= 0:
        raise TimeoutError
    # Each wait is bounded by the budget too, so a silent endpoint fails with the phase it hung in.
    timeouts = Timeouts(open=budget, first_response=budget, idle=budget)
    try:
        async with asyncio.timeout(budget), open_stream(target, timeouts) as stream:
            try:
                return await check(stream, target)
            finally:
                counts[:] = [stream.parts_sent, stream.parts_received]
    except (TimeoutError, _Mismatch):
        raise
    except Exception as error:
        exit_code, detail = describe(error)
        if exit_code in TRANSIENT:
            raise _Transient(detail) from error
        raise


async def _check_echo(stream: BidiStream, target: StreamTarget) -> str:
    nonce = uuid.uuid4().hex
    expected = [
        Part.text(f"bidistream smoke {nonce} ✓"),
        Part.binary(bytes(range(256)) + nonce.encode()),
    ]
    for part in expected:
        await stream.send(part)
        answer = await _whole_message(stream)
        if answer is None:
            raise _Mismatch(f"expected an echo of the {part.data_type} part, the stream ended instead")
        if answer.data_type != part.data_type or answer.data != part.data:
            raise _Mismatch(
                f"expected {part.data_type} {_preview(part.data)}, "
                f"got {answer.data_type} {_preview(answer.data)}"
            )
    await stream.close_input()
    try:
        extra = await stream.receive()
    except ModelStreamError as error:
        if error.error_code != "1000":
            raise
        extra = None
    if extra is not None:
        raise _Mismatch(
            f"expected the stream to end after the echoes, got another part {_preview(extra.data)}"
        )
    return f"echoed {len(expected)} parts (UTF8 and BINARY) with bytes and data types intact"


async def _check_transcribe(stream: BidiStream, target: StreamTarget) -> str:
    clip = read_wav(resources.files("bidistream.data").joinpath(SPEECH_CLIP).read_bytes())
    chunks = clip.chunks(CHUNK_SECONDS)

    audio_sent = False

    async def send_audio() -> None:
        nonlocal audio_sent
        async for chunk in paced(chunks, CHUNK_SECONDS, TRANSCRIBE_SPEED):
            await stream.send(Part.binary(chunk))
        await stream.send(Part.text(CLOSE_STREAM))
        audio_sent = True

    transcripts: list[str] = []
    messages = 0

    async def receive_transcripts() -> None:
        nonlocal messages
        while True:
            message = await _message_until_closed(stream)  # the model closes after CloseStream
            if message is None:
                break
            messages += 1
            result = parse_results(message.data) if message.data_type == UTF8 else None
            if result is not None and result.transcript.strip():
                transcripts.append(result.transcript.strip())

    # A failed send ends the check at once with its own error, not an idle timeout on the receive.
    await send_while_receiving(send_audio(), receive_transcripts())
    if not audio_sent:
        raise _Mismatch("expected the model to keep the stream open until the audio was sent")
    if not transcripts:
        raise _Mismatch(
            f"expected at least one Results message with a non-empty transcript for {clip.seconds:.1f}s "
            f"of speech, got {messages} messages without one"
        )
    return f"transcribed {clip.seconds:.1f}s of speech: {' '.join(transcripts)!r}"


async def _whole_message(stream: BidiStream) -> Part | None:
    """The next message, its fragments (PARTIAL... COMPLETE) joined; None when the stream ended."""
    first = await stream.receive()
    if first is None or first.is_final:
        return first
    data = bytearray(first.data)
    while True:
        part = await stream.receive()
        if part is None:
            raise _Mismatch("expected the rest of a fragmented message, the stream ended")
        data += part.data
        if part.is_final:
            return Part(bytes(data), first.data_type or BINARY, None)


async def _message_until_closed(stream: BidiStream) -> Part | None:
    """The next whole message; None when the stream ended or the model closed it normally (1000)."""
    try:
        return await _whole_message(stream)
    except ModelStreamError as error:
        if error.error_code != "1000":
            raise
        return None


def speech_bounds(text: str) -> tuple[float, float]:
    """The shortest and longest plausible audio, in seconds, for saying ``text``.

    Words at the fastest rate of ``SPEAKING_RATE_WPM``, and at the slowest plus ``SPEECH_PAUSE_SECONDS``.
    """
    words = len(text.split())
    slowest, fastest = SPEAKING_RATE_WPM
    return 60 * words / fastest, 60 * words / slowest + SPEECH_PAUSE_SECONDS


async def _check_speak(stream: BidiStream, target: StreamTarget) -> str:
    try:
        speech = SpeechFormat.from_query(target.query_string)
    except SpeechFormatError as error:
        raise _Mismatch(f"the speak check cannot measure the audio this query asks for: {error}") from None
    shortest, longest = speech_bounds(SPEAK_SENTENCE)
    bytes_per_second = FORMATS[speech.encoding][1] * speech.sample_rate
    await stream.send(Part.text(speak_message(SPEAK_SENTENCE)))
    await stream.send(Part.text(FLUSH))

    audio = 0
    model_name: str | None = None
    while True:
        message = await _whole_message(stream)
        heard = f"after {audio / bytes_per_second:.2f}s of audio"
        if message is None:
            raise _Mismatch(f"expected Flushed after the audio, the stream ended {heard}")
        if message.data_type != UTF8:
            audio += len(message.data)
            continue
        kind, fields = _speak_server_message(message.data)
        if kind == "Error":
            raise _Mismatch(f"the model answered with an Error {heard}: {_error_text(fields)}")
        if kind == "Metadata":
            model_name = str(fields.get("model_name", "?"))
        elif kind == "Flushed":
            break
    seconds = audio / bytes_per_second
    if model_name is None:
        raise _Mismatch(f"expected a Metadata message before Flushed, got none ({seconds:.2f}s of audio)")
    if not shortest <= seconds <= longest:
        raise _Mismatch(
            f"expected {shortest:.1f}-{longest:.1f}s of audio for the {len(SPEAK_SENTENCE.split())}-word "
            f"sentence ({speech.encoding} at {speech.sample_rate} Hz), got {seconds:.2f}s ({audio} bytes) "
            "before Flushed"
        )
    # Deepgram's Close speaks what is left (nothing: all was flushed) and closes the stream normally.
    await stream.send(Part.text(CLOSE))
    while True:
        message = await _message_until_closed(stream)
        if message is None:
            break
        if message.data_type != UTF8:
            raise _Mismatch(f"expected no audio after Flushed and Close, got {_preview(message.data)}")
        kind, fields = _speak_server_message(message.data)
        if kind == "Error":
            raise _Mismatch(f"the model answered Close with an Error: {_error_text(fields)}")
    return (
        f"spoke {seconds:.2f}s of {speech.encoding} at {speech.sample_rate} Hz for a "
        f"{len(SPEAK_SENTENCE.split())}-word sentence (plausible {shortest:.1f}-{longest:.1f}s), "
        f"voice {model_name}"
    )


def _speak_server_message(data: bytes) -> tuple[str, dict[str, Any]]:
    """A text-to-speech server's JSON message: its type (one of ``SPEAK_SERVER_MESSAGES``) and fields."""
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        message = None
    kind = message.get("type") if isinstance(message, dict) else None
    if not isinstance(message, dict) or kind not in SPEAK_SERVER_MESSAGES:
        raise _Mismatch(
            f"expected a text-to-speech message ({', '.join(SPEAK_SERVER_MESSAGES)}) or audio, "
            f"got UTF8 {_preview(data)}"
        )
    return str(kind), message


def _error_text(fields: dict[str, Any]) -> str:
    return str(fields.get("description") or fields.get("message") or json.dumps(fields))


@dataclass(frozen=True)
class SmokeCheck:
    """One smoke mode: what it checks on an open stream, and the path and query it uses by default."""

    run: Callable[[BidiStream, StreamTarget], Awaitable[str]]
    path: str | None = None
    query: str | None = None


# What each smoke mode checks; a new mode is one more entry.
CHECKS: Final[dict[str, SmokeCheck]] = {
    "echo": SmokeCheck(_check_echo),
    "transcribe": SmokeCheck(_check_transcribe, TRANSCRIBE_PATH, TRANSCRIBE_QUERY),
    "speak": SmokeCheck(_check_speak, SPEAK_PATH, SPEAK_QUERY),
}
MODES: Final = tuple(CHECKS)


def _preview(data: bytes, limit: int = 48) -> str:
    shown = data[:limit]
    return f"{shown!r}{'...' if len(data) > limit else ''} ({len(data)} bytes)"


@dataclass(frozen=True)
class EndpointState:
    """What DescribeEndpoint says: the serving config, the status and SageMaker's failure reason."""

    config_name: str
    status: str
    failure_reason: str | None


def _control_plane(service: str, region: str) -> Any:
    """A boto3 client whose every call is bounded (the Lambda's timeout budgets for them)."""
    # Imported here: boto3 is in every Lambda Python runtime but not in the bundle or the CLI's venv.
    import boto3  # type: ignore[import-not-found]
    from botocore.config import Config  # type: ignore[import-not-found]

    config = Config(
        connect_timeout=CONTROL_PLANE_CONNECT_SECONDS,
        read_timeout=CONTROL_PLANE_READ_SECONDS,
        retries={"max_attempts": CONTROL_PLANE_ATTEMPTS, "mode": "standard"},
    )
    return boto3.client(service, region_name=region, config=config)


def describe_endpoint(endpoint_name: str, region: str) -> EndpointState:
    """SageMaker DescribeEndpoint: which config serves, the endpoint status and any FailureReason."""
    response = _control_plane("sagemaker", region).describe_endpoint(EndpointName=endpoint_name)
    return EndpointState(
        config_name=str(response["EndpointConfigName"]),
        status=str(response["EndpointStatus"]),
        failure_reason=response.get("FailureReason"),
    )


def stack_status(stack_arn: str, region: str) -> str:
    """CloudFormation DescribeStacks on this one stack (its ARN): its status, e.g. UPDATE_IN_PROGRESS."""
    response = _control_plane("cloudformation", region).describe_stacks(StackName=stack_arn)
    return str(response["Stacks"][0]["StackStatus"])


def _smoke_from_environment() -> SmokeReport:
    return asyncio.run(
        run_smoke(
            os.environ["ENDPOINT_NAME"],
            region=os.environ["AWS_REGION"],
            mode=os.environ.get("SMOKE_MODE", "echo"),
            invocation_path=os.environ.get("INVOCATION_PATH") or None,
            query_string=os.environ.get("QUERY_STRING") or None,
            budget_seconds=float(os.environ.get("SMOKE_BUDGET_SECONDS", "60")),
            # Only for running the handlers against a local endpoint; unset in the deployed Lambdas.
            endpoint_uri=os.environ.get("SMOKE_ENDPOINT_URI") or None,
            ca_file=os.environ.get("SMOKE_CA_FILE") or None,
        )
    )


def _log(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """The CDK trigger's entry point: one JSON log line; raising fails (and rolls back) the deployment.

    The trigger runs after CloudFormation updated the endpoint, and the endpoint must then serve the
    config this check was made for (``EXPECTED_ENDPOINT_CONFIG``). If it serves another one:
    - while this stack is ``UPDATE_ROLLBACK_IN_PROGRESS``, CloudFormation is re-running the *previous*
      check during a rollback; it passes as skipped (failing would leave UPDATE_ROLLBACK_FAILED);
    - otherwise SageMaker itself rolled the update back (an alarm, a failed health check, no capacity):
      the check fails with the endpoint's status and FailureReason, so the stack does not report success
      while the old config serves.
    """
    endpoint_name = os.environ["ENDPOINT_NAME"]
    expected_config = os.environ.get("EXPECTED_ENDPOINT_CONFIG") or None
    if expected_config is not None:
        region = os.environ["AWS_REGION"]
        endpoint = describe_endpoint(endpoint_name, region)
        if endpoint.config_name != expected_config:
            status = stack_status(os.environ["STACK_ARN"], region)
            serving = (
                f"endpoint={endpoint_name} serves endpoint config {endpoint.config_name}, this check was "
                f"made for {expected_config}"
            )
            if status == ROLLBACK_STATUS:
                skipped = {
                    "ok": True,
                    "skipped": True,
                    "endpoint_name": endpoint_name,
                    "summary": f"smoke SKIP {serving} (stack {status})",
                }
                _log(skipped)
                return skipped
            report = SmokeReport(
                False,
                os.environ.get("SMOKE_MODE", "echo"),
                endpoint_name,
                0.0,
                0,
                0,
                f"{serving} while the stack is {status} (not rolling back): SageMaker did not put the new "
                f"config in service; endpoint status {endpoint.status}, FailureReason: "
                f"{endpoint.failure_reason or '(none given)'}",
            )
            _log({**asdict(report), "summary": report.summary()})
            raise SmokeTestFailed(report)
    try:
        report = _smoke_from_environment()
    except SmokeTestFailed as failure:
        _log({**asdict(failure.report), "summary": failure.report.summary()})
        raise
    _log({**asdict(report), "summary": report.summary()})
    return asdict(report)


def canary_metrics(report: SmokeReport, timestamp_ms: int) -> dict[str, Any]:
    """One log line in CloudWatch's embedded metric format: success and failure as 0/1 counts.

    CloudWatch Logs turns it into data points of ``StreamSuccess`` and ``StreamFailure`` in
    ``BidiStream/Canary`` with the dimension ``EndpointName``; the rest of the line is the report.
    """
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": CANARY_NAMESPACE,
                    "Dimensions": [["EndpointName"]],
                    "Metrics": [
                        {"Name": CANARY_SUCCESS_METRIC, "Unit": "Count"},
                        {"Name": CANARY_FAILURE_METRIC, "Unit": "Count"},
                    ],
                }
            ],
        },
        "EndpointName": report.endpoint_name,
        CANARY_SUCCESS_METRIC: int(report.ok),
        CANARY_FAILURE_METRIC: int(not report.ok),
        **asdict(report),
        "summary": report.summary(),
    }


def canary_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """The scheduled streaming canary: the same check, its outcome published as metrics, never raising.

    A failure is a data point of ``StreamFailure`` (its alarm pages, and rolls back an update while it
    bakes). Any exception counts as a failure too, with its traceback in the line: a run that raised
    before publishing would leave the failure alarm OK (missing data is not breaching there). A run
    that cannot even start or publish is what the canary's stopped alarm catches.
    """
    started = time.monotonic()
    extra: dict[str, Any] = {}
    try:
        report = _smoke_from_environment()
    except SmokeTestFailed as failure:
        report = failure.report
    except Exception as error:  # the canary's own setup failed: still a run that proved nothing
        report = SmokeReport(
            False,
            os.environ.get("SMOKE_MODE", "echo"),
            os.environ.get("ENDPOINT_NAME", ""),
            time.monotonic() - started,
            0,
            0,
            f"the canary could not run the check: {type(error).__name__}: {error}",
        )
        extra["traceback"] = traceback.format_exc()
    _log({**canary_metrics(report, int(time.time() * 1000)), **extra})
    return asdict(report)
