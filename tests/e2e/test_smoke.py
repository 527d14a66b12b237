"""The post-deploy smoke check (as a function, as the Lambda handler and as ``bidistream smoke``):
passes against a healthy container, fails with a message saying what was expected and what came back."""

from __future__ import annotations

import asyncio
import json

import pytest

from bidistream.errors import ExitCode
from bidistream.smoke import SmokeReport, SmokeTestFailed, lambda_handler, run_smoke
from tests.e2e.conftest import ENDPOINT_NAME, REGION, EndpointFactory, endpoint_args, run_cli
from tests.support.processes import RunningProcess


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

    with pytest.raises(
        SmokeTestFailed, match=r"smoke FAIL .*ModelError \(424\): Failed to establish WebSocket"
    ):
        smoke(down_endpoint)


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


def test_lambda_handler_skips_when_a_rollback_serves_another_config(
    peer_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A rollback re-runs the previous check while the endpoint still serves the new (failing) config.
    # DescribeEndpoint is AWS's; it stands in here, the stream below is real and would fail.
    point_handler_at(peer_endpoint, monkeypatch)
    monkeypatch.setenv("INVOCATION_PATH", "garble")
    monkeypatch.setenv("EXPECTED_ENDPOINT_CONFIG", "ConfigOld")
    monkeypatch.setattr("bidistream.smoke.serving_endpoint_config", lambda name, region: "ConfigNew")

    result = lambda_handler({}, None)

    assert (result["ok"], result["skipped"]) == (True, True)
    logged = json.loads(capsys.readouterr().out.strip())
    assert "serves endpoint config ConfigNew, this check was made for ConfigOld" in logged["summary"]


def test_lambda_handler_checks_when_the_endpoint_serves_its_config(
    peer_endpoint: RunningProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The twin: the config this check was made for is serving, so the (garbled) stream fails it.
    point_handler_at(peer_endpoint, monkeypatch)
    monkeypatch.setenv("INVOCATION_PATH", "garble")
    monkeypatch.setenv("EXPECTED_ENDPOINT_CONFIG", "ConfigNew")
    monkeypatch.setattr("bidistream.smoke.serving_endpoint_config", lambda name, region: "ConfigNew")

    with pytest.raises(SmokeTestFailed):
        lambda_handler({}, None)


def test_smoke_command_passes_and_fails_from_a_shell(
    container_endpoint: RunningProcess, peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    passed = run_cli("smoke", *endpoint_args(container_endpoint), env=credentials)
    failed = run_cli("smoke", *endpoint_args(peer_endpoint), "--path", "garble", env=credentials)

    assert (passed.returncode, passed.stdout.startswith("smoke PASS")) == (ExitCode.OK, True), passed.stderr
    assert (failed.returncode, failed.stderr.startswith("smoke FAIL")) == (ExitCode.FAILED, True), (
        failed.stderr
    )


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
