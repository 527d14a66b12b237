"""A client that stops reading cannot hold its session, nor the drain, forever.

With the client's TCP window full the server's writes never complete: the send deadline and the
bounded close abort the connection instead, and every other session is served as usual.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable

from tests.container.conftest import (
    DEFAULT_PATH,
    closed_with,
    open_session,
    server_env,
    session_ends,
    ws_url,
)
from tests.container.test_limits import echoes
from tests.support.processes import RunningProcess, model_server, wait_until

MESSAGE_BYTES = 1024 * 1024
GRACE_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 1.0
STUCK_BUFFER_BYTES = 64 * 1024  # asyncio's default high-water mark: over it, drain() waits
STUCK_POLLS = 10
POLL_TIMEOUT = 20.0
MARGIN_SECONDS = 8.0  # process start-up noise on 2 busy cores; the bug held the process for minutes


def masked_binary_frame(payload: bytes) -> bytes:
    """One client-to-server binary frame (FIN, masked with a zero key so the payload goes as is)."""
    length = len(payload)
    if length < 126:
        header = bytes([0x82, 0x80 | length])
    elif length < 1 << 16:
        header = bytes([0x82, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x82, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class NonReadingClient:
    """Opens a session on a raw socket, then sends 1 MiB echo messages and never reads a byte."""

    def __init__(self, server: RunningProcess) -> None:
        self._server = server
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._stuck_polls = 0

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._server.port)
        writer.write(
            f"GET {DEFAULT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert response.startswith(b"HTTP/1.1 101"), response
        self._writer = writer
        self._task = asyncio.create_task(self._flood(writer))

    async def _flood(self, writer: asyncio.StreamWriter) -> None:
        frame = masked_binary_frame(b"x" * MESSAGE_BYTES)
        try:
            while True:
                writer.write(frame)
                await writer.drain()
        except ConnectionError:
            return

    def stuck(self) -> bool:
        """True once the server has stopped reading too: our unsent bytes stay over the high-water mark.

        A reading server empties the buffer within a poll or two on loopback; a stuck one never does.
        """
        assert self._writer is not None
        piled_up = self._writer.transport.get_write_buffer_size() > STUCK_BUFFER_BYTES
        self._stuck_polls = self._stuck_polls + 1 if piled_up else 0
        return self._stuck_polls >= STUCK_POLLS

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.transport.abort()


async def poll(condition: Callable[[], bool], what: str) -> None:
    """``wait_until`` off the event loop, so the client's tasks keep running meanwhile."""
    await asyncio.to_thread(wait_until, condition, timeout=POLL_TIMEOUT, what=what)


def test_drain_ends_a_session_whose_client_stopped_reading_and_exits_0() -> None:
    env = server_env(
        DRAIN_GRACE_SECONDS=f"{GRACE_SECONDS:g}",
        CLOSE_TIMEOUT_SECONDS=f"{CLOSE_TIMEOUT_SECONDS:g}",
        MAX_MESSAGE_BYTES=str(2 * MESSAGE_BYTES),
    )
    with model_server(env=env) as server:

        async def scenario() -> tuple[tuple[int | None, str | None], float | None]:
            stuck = NonReadingClient(server)
            await stuck.start()
            try:
                await poll(stuck.stuck, "the server to stop reading the flooding client")
                async with open_session(ws_url(server)) as polite:
                    assert await echoes(polite)
                    server.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                    closed = await closed_with(polite)
                    exited_after = None
                    try:
                        await asyncio.to_thread(
                            server.wait, GRACE_SECONDS + CLOSE_TIMEOUT_SECONDS + MARGIN_SECONDS
                        )
                        exited_after = time.monotonic() - signalled
                    except subprocess.TimeoutExpired:
                        pass
                    return closed, exited_after
            finally:
                await stuck.stop()

        closed, exited_after = asyncio.run(scenario())
        assert closed == (1001, "server is draining")
        assert exited_after is not None, f"the server was still running:\n{server.output()[-3000:]}"
        assert server.wait(timeout=1) == 0
        ends = sorted(session_ends(server), key=lambda end: end["messages_in"])
        assert [end["close_code"] for end in ends] == [1001, 1001]


def test_a_send_the_client_never_reads_ends_its_session_and_frees_the_slot() -> None:
    env = server_env(IDLE_TIMEOUT_SECONDS="1", MAX_SESSIONS="1", MAX_MESSAGE_BYTES=str(2 * MESSAGE_BYTES))
    with model_server(env=env) as server:

        async def scenario() -> None:
            stuck = NonReadingClient(server)
            await stuck.start()
            try:
                await poll(stuck.stuck, "the server to stop reading the flooding client")
                await poll(lambda: len(session_ends(server)) >= 1, "the stuck session to end")
            finally:
                await stuck.stop()
            async with open_session(ws_url(server)) as ws:
                assert await echoes(ws)

        asyncio.run(scenario())
        end = session_ends(server)[0]
        assert (end["close_code"], end["closed_by"]) == (1006, "server")
        assert "stopped reading" in end["close_reason"]
        wait_until(server.alive, timeout=1, what="the server to keep running")
