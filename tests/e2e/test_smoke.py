"""The post-deploy smoke check (as a function, as the Lambda handler and as ``bidistream smoke``):
passes against a healthy container, fails with a message saying what was expected and what came back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shlex
import sys
import threading
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bidistream import smoke as smoke_module
from bidistream.audio import read_wav
from bidistream.errors import ExitCode
from bidistream.smoke import (
    CANARY_NAMESPACE,
    SPEAK_SENTENCE,
    EndpointState,
    SmokeReport,
    SmokeTestFailed,
    canary_handler,
    lambda_handler,
    run_smoke,
    speech_bounds,
)
from tests.e2e.conftest import ENDPOINT_NAME, REGION, EndpointFactory, endpoint_args, run_cli, wait_for_output
from tests.support.processes import RunningProcess, free_port, start_process


def smoke(container_endpoint: RunningProcess, **options: object) -> SmokeReport:
    return asyncio.run(
        run_smoke(
            ENDPOINT_NAME,
            region=REGION,
            endpoint_uri=str(container_endpoint.extra["uri"]),
            ca_file=str(container_endpoint.extra["ca_file"]),
            budget_seconds=30,
            **options,  # type: ignore[arg-type]
        )
    )


def point_handler_at(endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``lambda_handler`` against a local endpoint (the deployed Lambda leaves these unset)."""
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT_NAME)
    monkeypatch.setenv("SMOKE_ENDPOINT_URI", str(endpoint.extra["uri"]))
    monkeypatch.setenv("SMOKE_CA_FILE", str(endpoint.extra["ca_file"]))


def test_echo_smoke_passes_against_a_healthy_container(container_endpoint: RunningProcess) -> None:
    report = smoke(container_endpoint)

    assert report.ok
    assert (report.parts_sent, report.parts_received) == (2, 2)
    assert report.summary().startswith(f"smoke PASS endpoint={ENDPOINT_NAME} mode=echo")


def test_echo_smoke_fails_when_the_data_type_comes_back_wrong(peer_endpoint: RunningProcess) -> None:
    with pytest.raises(SmokeTestFailed) as failed:
        smoke(peer_endpoint, invocation_path="garble")

    assert not failed.value.report.ok
    assert "expected UTF8 b'bidistream smoke" in str(failed.value)
    assert "got BINARY" in str(failed.value)


def test_echo_smoke_fails_clearly_when_the_container_is_down(down_endpoint: RunningProcess) -> None:
    # A 424 from the container is definite: one attempt, no retry within the 30 s budget.
    with pytest.raises(
        SmokeTestFailed, match=r"smoke FAIL .*ModelError \(424\): Failed to establish WebSocket"
    ) as failed:
        smoke(down_endpoint)
    assert failed.value.report.attempts == 1
    assert failed.value.report.elapsed_seconds < 15


def test_echo_smoke_fails_when_the_container_closes_the_stream(peer_endpoint: RunningProcess) -> None:
    with pytest.raises(SmokeTestFailed, match=r"ModelStreamError \(close code 4002\): gone"):
        smoke(peer_endpoint, invocation_path="close", query_string="code=4002&reason=gone")


def test_transcribe_smoke_passes_with_a_transcript_of_the_bundled_clip(
    container_endpoint: RunningProcess,
) -> None:
    report = smoke(container_endpoint, mode="transcribe", query_string="encoding=linear16&sample_rate=16000")

    assert report.ok
    assert "transcribed" in report.detail
    assert report.detail.split(": ", 1)[1].strip("'")  # a non-empty transcript


def test_transcribe_smoke_fails_against_a_model_that_only_echoes(peer_endpoint: RunningProcess) -> None:
    # The peer echoes the audio back as binary and closes after CloseStream: no Results, no transcript.
    expected = "expected at least one Results message with a non-empty transcript"

    with pytest.raises(SmokeTestFailed, match=expected):
        smoke(peer_endpoint, mode="transcribe", invocation_path="echo")


def speak_smoke(endpoint: RunningProcess, **options: object) -> SmokeReport:
    return smoke(endpoint, mode="speak", **options)


@pytest.mark.parametrize(
    "query",
    [
        None,  # the check's default: model=aura-2-thalia-en&encoding=linear16&sample_rate=24000
        "model=aura-2-helena-en&encoding=mulaw",  # Deepgram's default rate for mu-law: 8000 Hz
        "model=aura-asteria-en&encoding=linear16&sample_rate=48000",
    ],
)
def test_speak_smoke_passes_with_audio_of_plausible_length(
    container_endpoint: RunningProcess, query: str | None
) -> None:
    # Measured in the query's encoding and rate: 1 byte a sample for mu-law, 2 for linear16.
    report = speak_smoke(container_endpoint, query_string=query)

    assert report.ok
    assert report.summary().startswith(f"smoke PASS endpoint={ENDPOINT_NAME} mode=speak")
    seconds = float(re.search(r"spoke (\d+\.\d+)s of ", report.detail).group(1))  # type: ignore[union-attr]
    shortest, longest = speech_bounds(SPEAK_SENTENCE)
    assert shortest <= seconds <= longest
    assert report.detail.endswith("voice espeak-us-female")  # from the Metadata message
    assert (report.parts_sent, report.attempts) == (3, 1)  # Speak, Flush, Close


@pytest.mark.parametrize(
    ("rates", "pause", "expected"),
    [
        (
            (60, 120),
            2.0,
            r"expected 7\.0-16\.0s of audio for the 14-word sentence \(linear16 at 24000 Hz\), got",
        ),
        (
            (300, 600),
            0.0,
            r"expected 1\.4-2\.8s of audio for the 14-word sentence \(linear16 at 24000 Hz\), got",
        ),
    ],
)
def test_speak_smoke_fails_when_the_audio_is_outside_the_plausible_length(
    container_endpoint: RunningProcess,
    monkeypatch: pytest.MonkeyPatch,
    rates: tuple[int, int],
    pause: float,
    expected: str,
) -> None:
    # The twin of the test above: the same real audio (about 5 s, 168 words a minute) fails a window
    # that demands a slower speaker (too short) or a faster one (too long). Definite: no retry.
    monkeypatch.setattr(smoke_module, "SPEAKING_RATE_WPM", rates)
    monkeypatch.setattr(smoke_module, "SPEECH_PAUSE_SECONDS", pause)

    with pytest.raises(SmokeTestFailed, match=expected) as failed:
        speak_smoke(container_endpoint)
    assert "mode=speak" in str(failed.value)
    assert re.search(r"got \d+\.\d\ds \(\d+ bytes\) before Flushed", failed.value.report.detail)
    assert failed.value.report.attempts == 1


def test_the_readme_states_the_speak_checks_bounds() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    readme = " ".join(readme.split())
    shortest, longest = speech_bounds(SPEAK_SENTENCE)
    slowest, fastest = smoke_module.SPEAKING_RATE_WPM
    assert f"one {len(SPEAK_SENTENCE.split())}-word sentence" in readme
    assert f"{slowest}-{fastest} words a minute plus {smoke_module.SPEECH_PAUSE_SECONDS:g} s" in readme
    assert f"{shortest:.1f}-{longest:.1f} s" in readme


def test_speak_smoke_fails_against_a_model_that_only_echoes(peer_endpoint: RunningProcess) -> None:
    # An echo at the speak path answers our own Speak message: no audio, no Metadata, no Flushed.
    expected = (
        r"expected a text-to-speech message \(Metadata, Flushed, Warning, Error\) or audio, "
        r"got UTF8 b'\{\"type\": \"Speak\""
    )
    with pytest.raises(SmokeTestFailed, match=expected):
        speak_smoke(peer_endpoint, invocation_path="echo")


def test_speak_smoke_fails_at_once_when_the_model_refuses_the_query(
    container_endpoint: RunningProcess,
) -> None:
    # The speak model refuses a voice it does not have with 400; the router answers 424: definite.
    with pytest.raises(SmokeTestFailed, match=r"smoke FAIL .*mode=speak.*ModelError \(424\)") as failed:
        speak_smoke(container_endpoint, query_string="model=aura-2-thalia-de")
    assert failed.value.report.attempts == 1


def test_speak_smoke_fails_at_once_on_a_deepgram_error_message(container_endpoint: RunningProcess) -> None:
    # The speech-to-text model at v1/listen takes the stream, and answers a Speak with an Error.
    with pytest.raises(
        SmokeTestFailed, match=r"the model answered with an Error after 0\.00s of audio: "
    ) as failed:
        speak_smoke(
            container_endpoint,
            invocation_path="v1/listen",
            query_string="encoding=linear16&sample_rate=24000",
        )
    assert failed.value.report.attempts == 1


def test_speak_smoke_refuses_a_query_whose_audio_it_cannot_measure(peer_endpoint: RunningProcess) -> None:
    # The speak model refuses such a query itself (424 above); an endpoint that takes it gets this.
    expected = r"the speak check cannot measure the audio this query asks for: encoding='opus'"
    with pytest.raises(SmokeTestFailed, match=expected) as failed:
        speak_smoke(peer_endpoint, invocation_path="echo", query_string="encoding=opus")
    assert failed.value.report.parts_sent == 0


def test_lambda_handler_logs_one_json_line_and_returns_the_report(
    container_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_handler_at(container_endpoint, monkeypatch)
    monkeypatch.setenv("SMOKE_BUDGET_SECONDS", "30")

    result = lambda_handler({}, None)

    logged = capsys.readouterr().out.strip().splitlines()
    assert len(logged) == 1
    assert json.loads(logged[0])["ok"] is True
    assert result["ok"] is True


def test_lambda_handler_raises_so_the_deployment_fails(
    peer_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_handler_at(peer_endpoint, monkeypatch)
    monkeypatch.setenv("INVOCATION_PATH", "garble")

    with pytest.raises(SmokeTestFailed):
        lambda_handler({}, None)

    logged = json.loads(capsys.readouterr().out.strip())
    assert logged["ok"] is False
    assert "got BINARY" in logged["summary"]


def test_trigger_and_canary_run_the_speak_check_from_the_environment_synth_gives_them(
    container_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stacks.settings import Settings

    settings = Settings.from_context({"smoke_mode": "speak"})
    point_handler_at(container_endpoint, monkeypatch)
    monkeypatch.setenv("SMOKE_MODE", settings.resolved_smoke_mode)
    monkeypatch.setenv("INVOCATION_PATH", str(settings.resolved_smoke_invocation_path))
    monkeypatch.setenv("QUERY_STRING", str(settings.resolved_smoke_query_string))

    assert lambda_handler({}, None)["ok"] is True
    triggered = json.loads(capsys.readouterr().out.strip())
    assert canary_handler({}, None)["ok"] is True
    published = json.loads(capsys.readouterr().out.strip())

    assert (published["StreamSuccess"], published["StreamFailure"]) == (1, 0)
    for line in (triggered, published):
        assert line["mode"] == "speak"
        assert re.search(r"mode=speak .*: spoke \d+\.\d\ds of linear16 at 24000 Hz", line["summary"])


STACK_ARN = "arn:aws:cloudformation:us-east-1:123456789012:stack/BidiStream/0a1b2c3d"


def control_plane(
    monkeypatch: pytest.MonkeyPatch, endpoint: EndpointState, stack_status: str
) -> list[tuple[str, str]]:
    """DescribeEndpoint and DescribeStacks are AWS's; they stand in here. Returns the calls made."""
    calls: list[tuple[str, str]] = []

    def describe_endpoint(name: str, region: str) -> EndpointState:
        calls.append(("DescribeEndpoint", name))
        return endpoint

    def describe_stack(arn: str, region: str) -> str:
        calls.append(("DescribeStacks", arn))
        return stack_status

    monkeypatch.setattr("bidistream.smoke.describe_endpoint", describe_endpoint)
    monkeypatch.setattr("bidistream.smoke.stack_status", describe_stack)
    monkeypatch.setenv("STACK_ARN", STACK_ARN)
    return calls


def test_lambda_handler_skips_only_while_this_stack_rolls_back(
    peer_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A rollback re-runs the previous check while the endpoint still serves the new (failing) config.
    # The stream below is real and would fail; the skip must not even open it.
    point_handler_at(peer_endpoint, monkeypatch)
    monkeypatch.setenv("INVOCATION_PATH", "garble")
    monkeypatch.setenv("EXPECTED_ENDPOINT_CONFIG", "ConfigOld")
    calls = control_plane(
        monkeypatch, EndpointState("ConfigNew", "Updating", None), "UPDATE_ROLLBACK_IN_PROGRESS"
    )

    result = lambda_handler({}, None)

    assert (result["ok"], result["skipped"]) == (True, True)
    assert calls == [("DescribeEndpoint", ENDPOINT_NAME), ("DescribeStacks", STACK_ARN)]
    logged = json.loads(capsys.readouterr().out.strip())
    assert "serves endpoint config ConfigNew, this check was made for ConfigOld" in logged["summary"]
    assert logged["summary"].endswith("(stack UPDATE_ROLLBACK_IN_PROGRESS)")


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED"])
def test_lambda_handler_fails_a_forward_deploy_that_sagemaker_rolled_back(
    container_endpoint: RunningProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: str,
) -> None:
    # SageMaker rolled the update back itself (an alarm, a failed health check, no capacity): the old
    # config serves, and streams to it work. The deployment must still fail, saying what SageMaker said.
    point_handler_at(container_endpoint, monkeypatch)
    monkeypatch.setenv("EXPECTED_ENDPOINT_CONFIG", "ConfigNew")
    reason = "Request to service failed. If failure persists after retry, contact customer support."
    control_plane(monkeypatch, EndpointState("ConfigOld", "InService", reason), status)

    with pytest.raises(SmokeTestFailed) as failed:
        lambda_handler({}, None)

    message = str(failed.value)
    assert message.startswith(f"smoke FAIL endpoint={ENDPOINT_NAME}")
    assert "serves endpoint config ConfigOld, this check was made for ConfigNew" in message
    assert f"while the stack is {status} (not rolling back)" in message
    assert f"endpoint status InService, FailureReason: {reason}" in message
    assert json.loads(capsys.readouterr().out.strip())["ok"] is False


def test_lambda_handler_checks_when_the_endpoint_serves_its_config(
    peer_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The twin: the config this check was made for is serving, so the (garbled) stream fails it, and
    # the stack's status is not even asked.
    point_handler_at(peer_endpoint, monkeypatch)
    monkeypatch.setenv("INVOCATION_PATH", "garble")
    monkeypatch.setenv("EXPECTED_ENDPOINT_CONFIG", "ConfigNew")
    calls = control_plane(monkeypatch, EndpointState("ConfigNew", "InService", None), "UPDATE_IN_PROGRESS")

    with pytest.raises(SmokeTestFailed):
        lambda_handler({}, None)
    assert calls == [("DescribeEndpoint", ENDPOINT_NAME)]


def endpoint_on(port: int, model_url: str, cert_dir: Path, credentials: dict[str, str]) -> RunningProcess:
    argv = [sys.executable, "-m", "bidistream", "endpoint", "--port", str(port), "--model-url", model_url]
    process = start_process([*argv, "--cert-dir", str(cert_dir)], port=port, env=credentials)
    wait_for_output(process, "ready: ")
    return process


def test_smoke_retries_a_refused_connection_until_the_endpoint_answers(
    container: RunningProcess,
    credentials: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Right after InService the runtime may refuse streams for a moment; that must not fail the deploy.
    port, cert_dir = free_port(), tmp_path / "certs"
    endpoint_on(port, container.base_url, cert_dir, credentials).stop()  # leaves its CA; now refused
    first_failure = threading.Event()
    real_attempt = smoke_module._attempt

    async def observed(*args: Any) -> str:
        try:
            return await real_attempt(*args)
        except Exception:
            first_failure.set()
            raise

    monkeypatch.setattr(smoke_module, "_attempt", observed)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = asyncio.run(
                run_smoke(
                    ENDPOINT_NAME,
                    region=REGION,
                    endpoint_uri=f"https://127.0.0.1:{port}",
                    ca_file=str(cert_dir / "ca.pem"),
                    budget_seconds=45,
                )
            )
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    assert first_failure.wait(20), "the first attempt never failed"
    endpoint = endpoint_on(port, container.base_url, cert_dir, credentials)
    try:
        thread.join(60)
        assert not thread.is_alive()
    finally:
        endpoint.stop()
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert isinstance(report, SmokeReport)
    assert report.ok and report.attempts >= 2
    assert f"attempts={report.attempts}" in report.summary()


def test_smoke_gives_up_on_a_refused_connection_when_the_budget_ends(credentials: dict[str, str]) -> None:
    with pytest.raises(SmokeTestFailed) as failed:
        asyncio.run(
            run_smoke(
                ENDPOINT_NAME,
                region=REGION,
                endpoint_uri=f"https://127.0.0.1:{free_port()}",
                budget_seconds=5,
            )
        )
    report = failed.value.report
    assert report.attempts >= 3  # 1, 2 seconds of backoff fit in 5 s
    assert f"(still failing after {report.attempts} attempts)" in report.detail
    assert report.detail.startswith("cannot connect")
    assert report.elapsed_seconds < 10


@pytest.mark.parametrize(
    ("failures", "attempts", "passes"),
    [
        (["ServiceUnavailable", "InternalStreamFailure"], 3, True),  # transient: retried, then passes
        (["ModelError"], 1, False),  # definite: fails at once
    ],
)
def test_only_transient_failures_are_retried(
    monkeypatch: pytest.MonkeyPatch, failures: list[str], attempts: int, passes: bool
) -> None:
    # The service's own error types, raised where the SDK raises them; the retry logic is the real one.
    from aws_sdk_sagemaker_runtime_http2.models import (  # type: ignore[import-untyped]
        InternalStreamFailure,
        ModelError,
        ServiceUnavailableError,
    )

    errors = {
        "ServiceUnavailable": ServiceUnavailableError(message="busy"),
        "InternalStreamFailure": InternalStreamFailure(message="reset"),
        "ModelError": ModelError(message="no WebSocket"),
    }
    pending = [errors[failure] for failure in failures]

    @contextlib.asynccontextmanager
    async def opened(target: object, timeouts: object) -> AsyncIterator[object]:
        if pending:
            raise pending.pop(0)
        yield types.SimpleNamespace(parts_sent=2, parts_received=2)

    async def answered(stream: object, target: object) -> str:
        return "answered"

    monkeypatch.setattr(smoke_module, "open_stream", opened)
    monkeypatch.setitem(smoke_module.CHECKS, "echo", smoke_module.SmokeCheck(answered))
    monkeypatch.setattr(smoke_module, "FIRST_BACKOFF_SECONDS", 0.01)
    if passes:
        report = asyncio.run(run_smoke(ENDPOINT_NAME, region=REGION, budget_seconds=10))
        assert (report.ok, report.attempts, report.detail) == (True, attempts, "answered")
    else:
        with pytest.raises(SmokeTestFailed, match=r"ModelError \(424\): no WebSocket") as failed:
            asyncio.run(run_smoke(ENDPOINT_NAME, region=REGION, budget_seconds=10))
        assert failed.value.report.attempts == attempts


def test_canary_publishes_success_and_failure_as_embedded_metrics(
    container_endpoint: RunningProcess,
    peer_endpoint: RunningProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_handler_at(container_endpoint, monkeypatch)
    assert canary_handler({}, None)["ok"] is True
    passed = json.loads(capsys.readouterr().out.strip())

    point_handler_at(peer_endpoint, monkeypatch)
    monkeypatch.setenv("INVOCATION_PATH", "garble")
    assert canary_handler({}, None)["ok"] is False  # published, not raised: a scheduled run
    failed = json.loads(capsys.readouterr().out.strip())

    for line, (success, failure) in ((passed, (1, 0)), (failed, (0, 1))):
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == CANARY_NAMESPACE
        assert directive["Dimensions"] == [["EndpointName"]]
        assert [metric["Name"] for metric in directive["Metrics"]] == ["StreamSuccess", "StreamFailure"]
        assert (line["EndpointName"], line["StreamSuccess"], line["StreamFailure"]) == (
            ENDPOINT_NAME,
            success,
            failure,
        )
        assert isinstance(line["_aws"]["Timestamp"], int)
    assert "got BINARY" in failed["summary"]


def test_canary_records_a_failure_when_the_check_cannot_even_start(
    container_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Anything but SmokeTestFailed used to escape the handler: no data point, and the alarm stayed OK.
    point_handler_at(container_endpoint, monkeypatch)
    monkeypatch.setenv("SMOKE_BUDGET_SECONDS", "soon")
    assert canary_handler({}, None)["ok"] is False
    failed = json.loads(capsys.readouterr().out.strip())

    # The twin: the same environment with a budget the check can read passes, with no traceback.
    monkeypatch.setenv("SMOKE_BUDGET_SECONDS", "20")
    assert canary_handler({}, None)["ok"] is True
    passed = json.loads(capsys.readouterr().out.strip())

    assert (failed["EndpointName"], failed["StreamSuccess"], failed["StreamFailure"]) == (ENDPOINT_NAME, 0, 1)
    assert "ValueError" in failed["summary"] and "'soon'" in failed["summary"]
    assert "Traceback (most recent call last)" in failed["traceback"]
    assert (passed["StreamSuccess"], passed["StreamFailure"]) == (1, 0) and "traceback" not in passed


@pytest.mark.parametrize("mode", smoke_module.MODES)
def test_the_stacks_invoke_command_streams_in_every_smoke_mode(
    mode: str, container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    from stacks.settings import Settings
    from stacks.smoke_test.check import SmokeCheckTarget

    settings = Settings.from_context({"smoke_mode": mode, "endpoint_name": ENDPOINT_NAME})
    # The output's words, as a shell splits them (the query is quoted for its '&').
    argv = shlex.split(" ".join(SmokeCheckTarget.from_settings(settings).invoke_command(REGION)))
    assert argv[:3] == ["bidistream", "invoke", ENDPOINT_NAME]
    if "--output" in argv:  # written under tmp_path, not into the checkout
        at = argv.index("--output") + 1
        argv[at] = str(tmp_path / argv[at])
    result = run_cli(*argv[1:], *endpoint_args(container_endpoint)[1:], env=credentials)

    assert result.returncode == ExitCode.OK, result.stderr
    if mode == "echo":
        assert result.stdout.strip() == "hello"
    elif mode == "transcribe":
        assert result.stdout.strip(), "no transcript printed"
    else:
        written = tmp_path / "speech.wav"
        assert f"wrote {written}" in result.stderr
        spoken = read_wav(written)
        assert (spoken.sample_rate, 0.2 < spoken.seconds < 5.0) == (24_000, True), spoken.seconds


def test_smoke_command_passes_and_fails_from_a_shell(
    container_endpoint: RunningProcess, peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    passed = run_cli("smoke", *endpoint_args(container_endpoint), env=credentials)
    failed = run_cli("smoke", *endpoint_args(peer_endpoint), "--path", "garble", env=credentials)

    assert (passed.returncode, passed.stdout.startswith("smoke PASS")) == (ExitCode.OK, True), passed.stderr
    assert (failed.returncode, failed.stderr.startswith("smoke FAIL")) == (ExitCode.FAILED, True), (
        failed.stderr
    )


def test_smoke_command_offers_every_mode_of_the_check(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    spoken = run_cli("smoke", *endpoint_args(container_endpoint), "--mode", "speak", env=credentials)
    refused = run_cli("smoke", *endpoint_args(container_endpoint), "--mode", "ping", env=credentials)

    assert spoken.returncode == ExitCode.OK, spoken.stderr
    assert spoken.stdout.startswith(f"smoke PASS endpoint={ENDPOINT_NAME} mode=speak")
    assert "s of linear16 at 24000 Hz" in spoken.stdout
    assert refused.returncode == ExitCode.USAGE
    assert "invalid choice: 'ping'" in refused.stderr
    assert all(f"'{mode}'" in refused.stderr for mode in smoke_module.MODES)
    # The runtime address comes from the region's partition, as the help now says.
    usage = " ".join(run_cli("smoke", "--help", env=credentials).stdout.split())
    assert "runtime.sagemaker.REGION.DNS_SUFFIX:8443" in usage and "amazonaws.com.cn in China" in usage


def test_smoke_signs_with_a_session_token_as_the_lambda_role_does(
    container: RunningProcess,
    start_endpoint: EndpointFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Lambda gets temporary credentials: key, secret and AWS_SESSION_TOKEN, all from its environment.
    endpoint = start_endpoint(container.base_url, env={"AWS_SESSION_TOKEN": "lambda-session-token"})
    monkeypatch.setenv("AWS_SESSION_TOKEN", "lambda-session-token")

    assert smoke(endpoint).ok
    monkeypatch.setenv("AWS_SESSION_TOKEN", "another-session-token")
    with pytest.raises(SmokeTestFailed, match=r"access denied \(403 UnrecognizedClientException\)"):
        smoke(endpoint)
