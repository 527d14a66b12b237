"""The transcribe tests' shared pieces: one real model server, the generated clips, a v1/listen client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.processes import REPO_ROOT, RunningProcess, model_server

DATA = REPO_ROOT / "tests" / "data"
#: Deepgram's SDK lives in its own virtualenv (make setup); its models check our messages.
DEEPGRAM_PYTHON = REPO_ROOT / ".venv-deepgram" / "bin" / "python"
DEEPGRAM_MODELS = Path(__file__).with_name("deepgram_models.py")
SPEECH = DATA / "speech"
# Seconds one exchange may take before the test fails: a hang guard. make test decodes in two lanes beside
# other tests on 2 shared cores; a 3.3 s clip at 48 kHz declared as 8 kHz took 22 s there (3.6 s alone).
TIMEOUT = 60.0
LISTEN = "encoding=linear16&sample_rate=16000"


def read_pcm(path: Path) -> bytes:
    """The samples of a generated clip (16 kHz mono 16-bit), without its header."""
    with wave.open(str(path), "rb") as clip:
        assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (16000, 1, 2), path
        return clip.readframes(clip.getnframes())


def evaluation_set() -> list[tuple[Path, str]]:
    """(clip, reference text) for every sentence of the generated evaluation set."""
    pairs = []
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        pairs.append((SPEECH / name, text))
    return pairs


@pytest.fixture(scope="session")
def listen_server() -> Iterator[RunningProcess]:
    """One server with only the transcribe model, shared by every test that opens its own sessions."""
    with model_server(env={"MODELS": "transcribe"}) as running:
        yield running


def listen_url(server: RunningProcess, query: str = LISTEN) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/listen" + (f"?{query}" if query else "")


def open_listen(url: str) -> Any:
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None, max_size=None)


@dataclass
class Received:
    """Everything a session sent back, in order, and how it closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None

    def results(self) -> list[dict[str, Any]]:
        return [message for message in self.messages if message.get("type") == "Results"]

    def finals(self) -> list[dict[str, Any]]:
        return [result for result in self.results() if result["is_final"]]

    def final_text(self) -> str:
        return " ".join(filter(None, (transcript(result) for result in self.finals())))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message.get("type") == kind]


def transcript(result: dict[str, Any]) -> str:
    return str(result["channel"]["alternatives"][0]["transcript"])


async def receive_until_closed(ws: ClientConnection, received: Received) -> Received:
    """Read JSON messages until the server closes the session (bounded by ``TIMEOUT``)."""

    async def drain() -> None:
        try:
            async for message in ws:
                assert isinstance(message, str), f"expected text frames only, got {len(message)} bytes"
                received.messages.append(json.loads(message))
        except ConnectionClosed:
            pass

    await asyncio.wait_for(drain(), TIMEOUT)
    received.close_code, received.close_reason = ws.close_code, ws.close_reason
    return received


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(message, str)
    parsed: dict[str, Any] = json.loads(message)
    return parsed


async def stream_clip(url: str, pcm: bytes, *, chunk_bytes: int = 3200) -> Received:
    """Send ``pcm`` in chunks, then CloseStream; return everything the session answered."""
    async with open_listen(url) as ws:
        received = Received()
        reader = asyncio.create_task(receive_until_closed(ws, received))
        for offset in range(0, len(pcm), chunk_bytes):
            await ws.send(pcm[offset : offset + chunk_bytes])
        await ws.send(json.dumps({"type": "CloseStream"}))
        return await reader


def transcribe(url: str, pcm: bytes, *, chunk_bytes: int = 3200) -> Received:
    return asyncio.run(stream_clip(url, pcm, chunk_bytes=chunk_bytes))


def deepgram_sdk(command: str, stdin: str = "") -> str:
    """Run ``deepgram_models.py command`` in .venv-deepgram; its standard output."""
    assert DEEPGRAM_PYTHON.exists(), "run make setup: .venv-deepgram holds Deepgram's SDK"
    done = subprocess.run(
        [str(DEEPGRAM_PYTHON), str(DEEPGRAM_MODELS), command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return done.stdout


def sdk_validation_errors(messages: list[dict[str, Any]]) -> list[str]:
    """Each message checked strictly against deepgram-sdk's typed model for its type; the failures."""
    lines = "".join(json.dumps(message) + "\n" for message in messages)
    verdicts = deepgram_sdk("validate", lines).splitlines()
    assert len(verdicts) == len(messages)
    return [verdict for verdict in verdicts if verdict != "ok"]
