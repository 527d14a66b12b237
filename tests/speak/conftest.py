"""The speak tests' shared pieces: one real server with the speak model, and a v1/speak client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.processes import RunningProcess, model_server

TIMEOUT = 30.0  # seconds one exchange may take before the test fails (2 shared cores)


@pytest.fixture(scope="session")
def speak_server() -> Iterator[RunningProcess]:
    """One server with only the speak model, shared by every test that opens its own sessions."""
    with model_server(env={"MODELS": "speak"}) as running:
        yield running


def speak_url(server: RunningProcess, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/v1/speak" + (f"?{query}" if query else "")


def open_speak(url: str) -> Any:
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None, max_size=None)


def speak(text: str) -> str:
    return json.dumps({"type": "Speak", "text": text})


FLUSH = json.dumps({"type": "Flush"})
CLEAR = json.dumps({"type": "Clear"})
CLOSE = json.dumps({"type": "Close"})


@dataclass
class Exchange:
    """What a session sent, in order: JSON messages as dicts, audio frames as bytes."""

    items: list[dict[str, Any] | bytes] = field(default_factory=list)

    def messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            item for item in self.items if isinstance(item, dict) and (kind is None or item["type"] == kind)
        ]

    def audio(self) -> bytes:
        return b"".join(item for item in self.items if isinstance(item, bytes))

    def kinds(self) -> list[str]:
        """The order of things, audio frames collapsed into one "audio" per run."""
        kinds: list[str] = []
        for item in self.items:
            kind = "audio" if isinstance(item, bytes) else str(item["type"])
            if not kinds or kinds[-1] != kind or kind != "audio":
                kinds.append(kind)
        return kinds


async def receive(ws: ClientConnection) -> dict[str, Any] | bytes:
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    if isinstance(message, bytes):
        return message
    parsed: dict[str, Any] = json.loads(message)
    return parsed


async def receive_until(ws: ClientConnection, kind: str, exchange: Exchange | None = None) -> Exchange:
    """Read until a JSON message of type ``kind`` arrives (it is the last item)."""
    exchange = exchange or Exchange()
    while True:
        item = await receive(ws)
        exchange.items.append(item)
        if isinstance(item, dict) and item["type"] == kind:
            return exchange


async def receive_until_closed(ws: ClientConnection, exchange: Exchange | None = None) -> Exchange:
    exchange = exchange or Exchange()
    try:
        while True:
            exchange.items.append(await receive(ws))
    except ConnectionClosed:
        return exchange


async def spoken(url: str, text: str) -> tuple[dict[str, Any], bytes]:
    """Metadata and the audio of ``text`` (Speak, Flush, up to Flushed)."""
    async with open_speak(url) as ws:
        metadata = await receive(ws)
        assert isinstance(metadata, dict) and metadata["type"] == "Metadata", metadata
        await ws.send(speak(text))
        await ws.send(FLUSH)
        exchange = await receive_until(ws, "Flushed")
        return metadata, exchange.audio()
