"""Many sessions at once on one server process: nothing lost, nothing reordered, types kept."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import ClientConnection

from tests.container.conftest import open_session, session_ends, ws_url
from tests.support.processes import RunningProcess, wait_until

SESSIONS = 200
MESSAGES = 20


def messages_for(index: int) -> list[str | bytes]:
    """Text and binary alternate; sizes vary so a mix-up between sessions cannot go unnoticed."""
    return [f"{index}:{n}" if n % 2 else f"{index}:{n}".encode() * (n + 1) for n in range(MESSAGES)]


async def exchange(ws: ClientConnection, sent: list[str | bytes]) -> list[str | bytes]:
    # Everything goes out before anything is read: the server must queue, not drop or reorder.
    for message in sent:
        await ws.send(message)
    return [await ws.recv() for _ in sent]


def test_200_concurrent_sessions_echo_everything_in_order(server: RunningProcess) -> None:
    async def scenario() -> list[bool]:
        async with contextlib.AsyncExitStack() as stack:
            sockets = await asyncio.gather(
                *(stack.enter_async_context(open_session(ws_url(server))) for _ in range(SESSIONS))
            )
            # All 200 are open before the first message is sent.
            received = await asyncio.gather(
                *(exchange(ws, messages_for(index)) for index, ws in enumerate(sockets))
            )
        return [answers == messages_for(index) for index, answers in enumerate(received)]

    before = len(session_ends(server))
    assert asyncio.run(scenario()) == [True] * SESSIONS
    wait_until(
        lambda: len(session_ends(server)) == before + SESSIONS, timeout=30, what="one session_end per session"
    )
