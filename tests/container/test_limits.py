"""Limits a server enforces per process: session count, idle time, keepalive, clients that vanish."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.container.conftest import closed_with, open_session, server_env, session_ends, ws_url
from tests.support.processes import RunningProcess, model_server, wait_until


async def echoes(ws: ClientConnection, message: str = "still here") -> bool:
    await ws.send(message)
    return await ws.recv() == message


def test_session_over_the_limit_is_closed_with_1013_and_a_freed_slot_is_reused() -> None:
    with model_server(env=server_env(MAX_SESSIONS="2")) as server:

        async def scenario() -> tuple[int | None, str | None, bool, bool]:
            url = ws_url(server)
            async with open_session(url) as first, open_session(url) as second:
                assert await echoes(first) and await echoes(second)
                async with open_session(url) as third:
                    code, reason = await closed_with(third)
                still_serving = await echoes(first)
            # Both slots are free again once the server has seen the closes.
            async with open_session(url) as again:
                reused = await echoes(again)
            return code, reason, still_serving, reused

        code, reason, still_serving, reused = asyncio.run(scenario())
    assert (code, reason) == (1013, "at the session limit (2)")
    assert still_serving and reused


def test_idle_session_is_closed_with_1008() -> None:
    with model_server(env=server_env(IDLE_TIMEOUT_SECONDS="1")) as server:

        async def scenario() -> tuple[int | None, str | None]:
            async with open_session(ws_url(server)) as ws:
                assert await echoes(ws)
                return await closed_with(ws)

        assert asyncio.run(scenario()) == (1008, "idle timeout: no message for 1 s")


def test_a_session_that_keeps_talking_is_not_idle() -> None:
    with model_server(env=server_env(IDLE_TIMEOUT_SECONDS="1.5")) as server:

        async def scenario() -> bool:
            async with open_session(ws_url(server)) as ws:
                # Over 2 s of traffic with gaps well under the 1.5 s timeout: longer than it, still open.
                for _ in range(11):
                    assert await echoes(ws)
                    await asyncio.sleep(0.2)  # pacing the client's traffic, not synchronisation
                return ws.close_code is None

        assert asyncio.run(scenario())


def test_server_sends_keepalive_pings() -> None:
    with model_server(env=server_env(PING_INTERVAL_SECONDS="0.2")) as server:

        async def scenario() -> aiohttp.WSMsgType:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(ws_url(server), autoping=False)
                message = await ws.receive(timeout=5)
                await ws.close()
                return message.type

        assert asyncio.run(scenario()) is aiohttp.WSMsgType.PING


@pytest.mark.parametrize("how", ["mid-message", "between-messages"])
def test_client_vanishing_mid_stream_frees_its_session(how: str) -> None:
    with model_server(env=server_env(MAX_SESSIONS="1")) as server:

        async def slot_is_free() -> bool:
            async with open_session(ws_url(server)) as ws:
                await ws.send("anyone?")
                try:
                    return await ws.recv() == "anyone?"
                except ConnectionClosed:  # 1013: the vanished session still holds the only slot
                    return False

        asyncio.run(vanish(how, server))
        wait_until(
            lambda: asyncio.run(slot_is_free()), timeout=10, what="the vanished client's slot to be freed"
        )
        wait_until(lambda: len(session_ends(server)) >= 1, timeout=5, what="the session_end line")
        end = session_ends(server)[0]
        assert (end["close_code"], end["closed_by"]) == (1006, "client")
        assert end["messages_in"] == 1


async def vanish(how: str, server: RunningProcess) -> None:
    """Open a session on a raw socket, echo once, then drop the TCP connection without a Close frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /invocations-bidirectional-stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert response.startswith(b"HTTP/1.1 101")
    writer.write(masked_frame(0x82, b"hello"))  # FIN + binary
    answer = await asyncio.wait_for(reader.readexactly(2 + 5), 10)
    assert answer == b"\x82\x05hello"
    if how == "mid-message":
        writer.write(masked_frame(0x02, b"first fragment"))  # binary, FIN=0: the message never completes
        writer.write(masked_frame(0x00, b"and half a frame")[:8])  # a continuation cut off inside the frame
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    writer.transport.abort()


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    mask = b"\x11\x22\x33\x44"
    assert len(payload) < 126
    return (
        bytes([first_byte, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
