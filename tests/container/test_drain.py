"""Graceful drain on SIGTERM: /ping 503, no new sessions, open ones get 1001 after the grace, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tests.container.conftest import (
    closed_with,
    open_session,
    server_env,
    session_ends,
    upgrade_refused,
    ws_url,
)
from tests.support.processes import http_status, model_server, start_model_server, wait_until


def test_sigterm_drains_open_sessions_with_1001_and_exits_0() -> None:
    with model_server(env=server_env(DRAIN_GRACE_SECONDS="3")) as server:

        async def scenario() -> tuple[str | bytes, tuple[int, str], tuple[int | None, str | None]]:
            async with open_session(ws_url(server)) as ws:
                server.send_signal(signal.SIGTERM)
                await asyncio.to_thread(
                    wait_until,
                    lambda: http_status(f"{server.base_url}/ping") == 503,
                    timeout=10,
                    what="/ping == 503 while draining",
                )
                # The open session is still served during the grace period...
                await ws.send("during the grace")
                answer = await ws.recv()
                # ...a new one is refused...
                refused = await upgrade_refused(ws_url(server))
                # ...and when the grace is over the server closes the open one with 1001.
                return answer, refused, await closed_with(ws)

        answer, refused, closed = asyncio.run(scenario())
        assert answer == "during the grace"
        assert refused == (503, "server is draining\n")
        assert closed == (1001, "server is draining")
        assert server.wait(timeout=15) == 0
        assert [end["close_code"] for end in session_ends(server)] == [1001]


def test_drain_ends_early_when_the_sessions_finish_on_their_own() -> None:
    with model_server(env=server_env(DRAIN_GRACE_SECONDS="60")) as server:

        async def scenario() -> None:
            async with open_session(ws_url(server)) as ws:
                server.send_signal(signal.SIGTERM)
                await asyncio.to_thread(
                    wait_until,
                    lambda: http_status(f"{server.base_url}/ping") == 503,
                    timeout=10,
                    what="/ping == 503 while draining",
                )
                await ws.send("last words")
                assert await ws.recv() == "last words"

        asyncio.run(scenario())
        started = time.monotonic()
        assert server.wait(timeout=15) == 0
        assert time.monotonic() - started < 15  # far less than the 60 s grace
        assert [end["close_code"] for end in session_ends(server)] == [1000]


def test_sigterm_with_no_sessions_exits_0_at_once() -> None:
    with model_server(env=server_env()) as server:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0


def test_sigterm_while_a_model_loads_exits_0_without_waiting_for_it(tmp_path: Path) -> None:
    env = server_env(
        EXTRA_ROUTES="test/gated=tests.container.fixture_models:GatedLoadModel",
        LOAD_GATE=str(tmp_path / "never-created"),
    )
    server = start_model_server(env=env, ready=False)
    try:
        wait_until(lambda: http_status(f"{server.base_url}/ping") == 503, timeout=30, what="/ping == 503")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        server.stop()
