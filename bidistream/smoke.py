"""The post-deploy smoke test: open a real stream, check the answers, fail loudly.

Runs as the CDK trigger Lambda (``lambda_handler``) right after the endpoint is created, and from a
shell as ``bidistream smoke``. Modes:

* ``echo``: send a text part and a binary part; each must come back with the same bytes and the same
  DataType (fragments are joined first). Then close the input; the stream must end cleanly.
* ``transcribe``: stream the bundled speech clip as binary PCM (faster than real time), then
  ``{"type":"CloseStream"}``; at least one ``Results`` message must carry a non-empty transcript.
  Works for Deepgram Nova-3 (Marketplace) and for the container's own ``v1/listen`` model.

Stdlib and SDK only: the Lambda bundle holds the SDK, awscrt and this package, nothing else. (The
Lambda also reads which endpoint config is serving with boto3, which every Lambda Python runtime has.)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
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
from bidistream.errors import describe
from bidistream.transcript import parse_results

MODES: Final = ("echo", "transcribe")
TRANSCRIBE_PATH: Final = "v1/listen"
TRANSCRIBE_QUERY: Final = "model=nova-3&encoding=linear16&sample_rate=16000"
TRANSCRIBE_SPEED: Final = 2.0  # times real time: quick, and both models keep up with it
CLOSE_STREAM: Final = '{"type":"CloseStream"}'
SPEECH_CLIP: Final = "speech-sample.wav"


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

    def summary(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"smoke {verdict} endpoint={self.endpoint_name} mode={self.mode} "
            f"elapsed={self.elapsed_seconds:.2f}s sent={self.parts_sent} received={self.parts_received}: "
            f"{self.detail}"
        )


class SmokeTestFailed(Exception):
    """The endpoint did not answer as expected; the message says what was expected and what came back."""

    def __init__(self, report: SmokeReport) -> None:
        super().__init__(report.summary())
        self.report = report


class _Mismatch(Exception):
    pass


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
    """Run the check; returns the report when it passes, raises ``SmokeTestFailed`` when it does not."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "transcribe":
        invocation_path = invocation_path or TRANSCRIBE_PATH
        query_string = query_string or TRANSCRIBE_QUERY
    target = StreamTarget(
        endpoint_name=endpoint_name,
        region=region,
        endpoint_uri=endpoint_uri,
        ca_file=ca_file,
        invocation_path=invocation_path,
        query_string=query_string,
        target_variant=target_variant,
    )
    # Each wait is bounded by the budget too, so a silent endpoint fails with the phase it hung in.
    timeouts = Timeouts(open=budget_seconds, first_response=budget_seconds, idle=budget_seconds)
    started = time.monotonic()
    counts = [0, 0]

    def report(ok: bool, detail: str) -> SmokeReport:
        return SmokeReport(ok, mode, endpoint_name, time.monotonic() - started, counts[0], counts[1], detail)

    try:
        async with asyncio.timeout(budget_seconds), open_stream(target, timeouts) as stream:
            try:
                check = _check_echo if mode == "echo" else _check_transcribe
                detail = await check(stream)
            finally:
                counts[:] = [stream.parts_sent, stream.parts_received]
    except TimeoutError:
        raise SmokeTestFailed(
            report(False, f"no complete answer within the {budget_seconds:g}s budget")
        ) from None
    except _Mismatch as mismatch:
        raise SmokeTestFailed(report(False, str(mismatch))) from None
    except Exception as error:
        raise SmokeTestFailed(report(False, describe(error)[1])) from error
    return report(True, detail)


async def _check_echo(stream: BidiStream) -> str:
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


async def _check_transcribe(stream: BidiStream) -> str:
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
            try:
                message = await _whole_message(stream)
            except ModelStreamError as error:
                if error.error_code != "1000":
                    raise
                break  # the model closed normally after CloseStream
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


def _preview(data: bytes, limit: int = 48) -> str:
    shown = data[:limit]
    return f"{shown!r}{'...' if len(data) > limit else ''} ({len(data)} bytes)"


def serving_endpoint_config(endpoint_name: str, region: str) -> str:
    """The name of the endpoint config the endpoint serves now (SageMaker DescribeEndpoint)."""
    # Imported here: boto3 is in every Lambda Python runtime but not in the bundle or the CLI's venv.
    import boto3  # type: ignore[import-not-found]

    response = boto3.client("sagemaker", region_name=region).describe_endpoint(EndpointName=endpoint_name)
    return str(response["EndpointConfigName"])


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """The CDK trigger's entry point: one JSON log line; raising fails (and rolls back) the deployment.

    On a rollback CloudFormation re-runs the *previous* function version while the endpoint still
    serves the new config; that check was made for another config, so it passes as skipped instead
    of failing the rollback (which would leave the stack in UPDATE_ROLLBACK_FAILED).
    """
    endpoint_name = os.environ["ENDPOINT_NAME"]
    expected_config = os.environ.get("EXPECTED_ENDPOINT_CONFIG") or None
    if expected_config is not None:
        serving = serving_endpoint_config(endpoint_name, os.environ["AWS_REGION"])
        if serving != expected_config:
            skipped = {
                "ok": True,
                "skipped": True,
                "endpoint_name": endpoint_name,
                "summary": (
                    f"smoke SKIP endpoint={endpoint_name}: it serves endpoint config {serving}, this check "
                    f"was made for {expected_config} (a rollback in progress)"
                ),
            }
            print(json.dumps(skipped), flush=True)
            return skipped
    try:
        report = asyncio.run(
            run_smoke(
                endpoint_name,
                region=os.environ["AWS_REGION"],
                mode=os.environ.get("SMOKE_MODE", "echo"),
                invocation_path=os.environ.get("INVOCATION_PATH") or None,
                query_string=os.environ.get("QUERY_STRING") or None,
                budget_seconds=float(os.environ.get("SMOKE_BUDGET_SECONDS", "60")),
                # Only for running the handler against a local endpoint; unset in the deployed Lambda.
                endpoint_uri=os.environ.get("SMOKE_ENDPOINT_URI") or None,
                ca_file=os.environ.get("SMOKE_CA_FILE") or None,
            )
        )
    except SmokeTestFailed as failure:
        print(json.dumps({**asdict(failure.report), "summary": failure.report.summary()}), flush=True)
        raise
    print(json.dumps({**asdict(report), "summary": report.summary()}), flush=True)
    return asdict(report)
