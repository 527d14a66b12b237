"""Plain HTTP on the WebSocket port: /ping while loading, ready and failed; POST /invocations."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.container.conftest import log_lines, server_env, upgrade_refused
from tests.support.processes import RunningProcess, http_status, model_server, start_model_server, wait_until


def post(url: str, body: bytes, content_type: str | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(), error.headers.get("Content-Type", "")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_ping_is_200_when_ready(server: RunningProcess, method: str) -> None:
    assert http_status(f"{server.base_url}/ping", method=method) == 200


def test_invocations_answers_with_the_default_model(server: RunningProcess) -> None:
    status, body, content_type = post(
        f"{server.base_url}/invocations", b'{"inputs": "hi"}', "application/json"
    )
    assert (status, body, content_type) == (200, b'{"inputs": "hi"}', "application/json")


def test_invocations_is_post_only(server: RunningProcess) -> None:
    assert http_status(f"{server.base_url}/invocations", method="GET") == 405


def test_ping_is_503_until_every_model_has_loaded(tmp_path: Path) -> None:
    gate = tmp_path / "loaded"
    env = server_env(
        EXTRA_ROUTES="test/gated=tests.container.fixture_models:GatedLoadModel", LOAD_GATE=str(gate)
    )
    server = start_model_server(env=env, ready=False)
    try:
        wait_until(
            lambda: http_status(f"{server.base_url}/ping") == 503,
            timeout=30,
            what="/ping == 503 while loading",
        )
        assert http_status(f"{server.base_url}/ping", method="POST") == 503
        assert post(f"{server.base_url}/invocations", b"early")[0] == 503
        gate.touch()
        wait_until(lambda: http_status(f"{server.base_url}/ping") == 200, timeout=30, what="/ping == 200")
    finally:
        server.stop()


def test_ping_is_503_while_a_loaded_model_says_it_is_unhealthy(tmp_path: Path) -> None:
    flag = tmp_path / "unhealthy"
    env = server_env(
        EXTRA_ROUTES="test/health=tests.container.fixture_models:HealthFlagModel", UNHEALTHY_FLAG=str(flag)
    )
    with model_server(env=env) as server:
        flag.touch()
        assert post(f"{server.base_url}/ping", b"")[:2] == (503, b'{"status": "unhealthy"}')
        assert http_status(f"{server.base_url}/ping") == 503
        flag.unlink()
        assert http_status(f"{server.base_url}/ping") == 200


def test_a_model_that_fails_to_load_stops_the_server_with_its_cause() -> None:
    env = server_env(EXTRA_ROUTES="test/broken=tests.container.fixture_models:BrokenLoadModel")
    server = start_model_server(env=env, ready=False)
    try:
        assert server.wait(timeout=30) == 1
    finally:
        server.stop()
    failure = next(line for line in log_lines(server) if line.get("event") == "load_failed")
    assert failure["error"] == "OSError: weights file is missing"


def test_default_model_set_serves_echo_and_transcribe() -> None:
    # No MODELS: every model in the route table, the speech model included, must load.
    env = {"MODELS": "", "EXTRA_ROUTES": "", "TRANSCRIBE_WARM_DECODERS": "0"}
    with model_server(env=env) as server:
        ready = next(line for line in log_lines(server) if line.get("event") == "ready")
        assert ready["routes"] == {
            "/invocations-bidirectional-stream": "echo",
            "/v1/listen": "transcribe",
            "/v1/speak": "speak",
        }
        # The path reaches the speech model: it refuses what it does not know, with its own reason.
        status, body = asyncio.run(upgrade_refused(f"ws://127.0.0.1:{server.port}/v1/listen?colour=blue"))
        assert status == 400
        assert "unknown query parameter(s) colour" in body
