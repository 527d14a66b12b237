"""Shared pieces for the container server's tests: servers with the test models mounted, WebSocket helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.processes import REPO_ROOT, RunningProcess, model_server

DEFAULT_PATH = "/invocations-bidirectional-stream"
#: Test models mounted next to echo; the server imports them from the repository root.
EXTRA_ROUTES = ",".join(
    [
        "test/query=tests.container.fixture_models:QueryModel",
        "test/binary-only=tests.container.fixture_models:BinaryOnlyModel",
        "test/failing=tests.container.fixture_models:FailingModel",
        "test/quick-idle=tests.container.fixture_models:QuickIdleModel",
    ]
)
MAX_MESSAGE_BYTES = 64 * 1024
TIMEOUT = 10.0  # seconds any single exchange may take before the test fails


def server_env(**overrides: str) -> dict[str, str]:
    """The environment for a server with only echo from the real table, plus the test models."""
    return {
        "MODELS": "echo",
        "EXTRA_ROUTES": EXTRA_ROUTES,
        "PYTHONPATH": str(REPO_ROOT),
        "MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        **overrides,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[RunningProcess]:
    """One server for every test in a module that only opens and closes its own sessions."""
    with model_server(env=server_env()) as running:
        yield running


def ws_url(server: RunningProcess, path: str = DEFAULT_PATH, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}{path}" + (f"?{query}" if query else "")


def open_session(url: str, **kwargs: Any) -> Any:
    """``websockets`` connect with the test's timeouts and no compression (the sidecar sends none)."""
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None, **kwargs)


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait until the server closes ``ws``; return the close code and reason the client received."""
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    return ws.close_code, ws.close_reason


async def upgrade_refused(url: str) -> tuple[int, str]:
    """Try to open ``url``; return the HTTP status and body of the refused upgrade."""
    try:
        async with open_session(url):
            pass
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.body.decode(errors="replace")
    raise AssertionError(f"the upgrade to {url} was accepted")


def log_lines(server: RunningProcess) -> list[dict[str, Any]]:
    """The server's JSON log lines (anything else it printed fails the test: stdout is for JSON)."""
    lines = []
    for line in server.output().splitlines():
        if line.strip():
            lines.append(json.loads(line))
    return lines


def session_ends(server: RunningProcess) -> list[dict[str, Any]]:
    return [line for line in log_lines(server) if line.get("event") == "session_end"]
