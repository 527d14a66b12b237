"""The limit on text waiting to be spoken, with a client that is not reading (in process: a session
whose audio sends wait until the test lets them through, as a real socket's do once megabytes of
buffers are full; the server itself gives such a send up after its idle timeout)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from model_server.model import CloseCode
from model_server.models.speak.engine import Engine
from model_server.models.speak.params import parse_speak_query
from model_server.models.speak.session import MAX_PENDING_CHARACTERS, SpeakSession, SpeechRuntime

#: 2000 characters (a full Speak) in sentences of 400.
FULL_SPEAK = ("word " * 79 + "end. ") * 5


class StalledSession:
    """A ``Session`` whose client takes no audio until ``released`` is set."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.texts: list[str] = []
        self.session_id = "stalled"
        self.path = "/v1/speak"

    async def send_text(self, text: str) -> None:
        self.texts.append(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.released.wait()

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        pass

    def errors(self) -> list[dict[str, str]]:
        return [message for message in map(json.loads, self.texts) if message["type"] == "Error"]


@pytest.fixture(scope="module")
def runtime() -> Iterator[SpeechRuntime]:
    executor = ThreadPoolExecutor(max_workers=1)
    engine = Engine()
    executor.submit(engine.load).result()
    yield SpeechRuntime(engine=engine, executor=executor)
    executor.shutdown()


def speak_messages(runtime: SpeechRuntime, count: int) -> StalledSession:
    async def run() -> StalledSession:
        session = StalledSession()
        handler = SpeakSession(session, parse_speak_query({}), runtime)
        speaking = []
        for _ in range(count):
            speaking.append(
                asyncio.create_task(handler.on_text(json.dumps({"type": "Speak", "text": FULL_SPEAK})))
            )
            await asyncio.sleep(0.01)  # the runner takes the first sentence and waits to send its audio
        session.released.set()  # an Error waits for the audio frame being sent, as on a socket
        await asyncio.gather(*speaking)
        await handler.on_end()
        return session

    return asyncio.run(run())


def test_speak_past_the_pending_limit_gets_an_error(runtime: SpeechRuntime) -> None:
    session = speak_messages(runtime, MAX_PENDING_CHARACTERS // len(FULL_SPEAK) + 1)

    (error,) = session.errors()
    assert error["variant"] == "TEXT_LIMIT"
    assert f"at most {MAX_PENDING_CHARACTERS} may wait" in error["description"]


def test_text_within_the_limit_is_taken(runtime: SpeechRuntime) -> None:
    """The twin: the same stalled client, as much text as the limit allows, and no error."""
    session = speak_messages(runtime, MAX_PENDING_CHARACTERS // len(FULL_SPEAK))

    assert session.errors() == []
