"""Deepgram's Python SDK with its SageMaker transport, used as their READMEs show, through the local stack.

Usage (in .venv-deepgram): python deepgram_driver.py FIRST.wav SECOND.wav. One live session with the
options Deepgram's live-streaming examples use (interim results, smart_format, utterance_end_ms,
vad_events, language=en-US):

1. FIRST is streamed at real time in 100 ms chunks, with a KeepAlive half-way, then a second of
   silence: interim and final results, SpeechStarted and UtteranceEnd are expected.
2. The first ``CUT_SECONDS`` of SECOND (speech still going on) are sent, then Finalize: the flushed
   result carries ``from_finalize``.
3. CloseStream: the Metadata message, then the close (SageMaker reports it as ModelStreamError 1000).

Prints JSON lines: ``request`` (the URL the SDK built; the transport sends its path and query),
``redirect`` (the runtime address the transport asked for, replaced by the local endpoint's), one
``message`` per message received (its type, its fields, and ``problems`` found validating it strictly
against the SDK's typed model), ``error`` per ERROR event, ``sent`` after each control message,
``closed`` at the CLOSE event.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import deepgram_sagemaker.transport as transport_module
from deepgram import AsyncDeepgramClient
from deepgram.core.events import EventType
from deepgram.listen.v1.socket_client import V1SocketClientResponse
from deepgram_sagemaker import SageMakerTransportFactory
from driver_support import Clip, emit, endpoint_name, fail, real_time, region, runtime_uri
from pydantic import BaseModel

CHUNK_SECONDS = 0.1
TRAILING_SILENCE_SECONDS = 1.0  # with the clip's own second of silence: past utterance_end_ms
CUT_SECONDS = 2.0  # SECOND's first 0.5 s of silence and 1.5 s of speech
UTTERANCE_END_MS = "1000"  # Deepgram's minimum
WAIT_SECONDS = 15.0  # for an expected message (decoding shares 2 busy cores)
TRANSCRIBE_TESTS = Path(__file__).resolve().parents[1] / "transcribe"
MODELS: dict[str, type[BaseModel]] = {model.__name__: model for model in V1SocketClientResponse.__args__}


class LocalRuntimeConfig(transport_module.AsyncSageMakerRuntimeHTTP2Config):  # type: ignore[misc, name-defined]
    """The transport's config with the local endpoint in place of the hard-coded public address."""

    @classmethod
    async def resolve(cls, **overrides: Any) -> Any:
        emit("redirect", replaced=overrides.get("endpoint_uri"))
        overrides["endpoint_uri"] = runtime_uri()
        return await super().resolve(**overrides)


def strict_problems(message: Any) -> list[str]:
    """What is wrong with ``message`` judged strictly (the SDK itself parses leniently): not the SDK
    model its ``type`` names, or, by the check the container's own tests use, a field missing, of the
    wrong type, or not declared."""
    if not isinstance(message, BaseModel) or type(message) not in MODELS.values():
        return [f"not one of the SDK's listen.v1 message models: {type(message).__name__}"]
    verdict = strict_validator()(json.dumps(sent_fields(message)))
    return [] if verdict == "ok" else [verdict]


def strict_validator() -> Callable[[str], str]:
    """``validate`` of tests/transcribe/deepgram_models.py, which also runs in this virtualenv."""
    if str(TRANSCRIBE_TESTS) not in sys.path:
        sys.path.append(str(TRANSCRIBE_TESTS))
    return importlib.import_module("deepgram_models").validate  # type: ignore[no-any-return]


def sent_fields(message: BaseModel) -> dict[str, Any]:
    """The message as the server sent it: the SDK keeps every field it was given, declared or not."""
    return message.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Session:
    """Everything the connection's events delivered, with a way to wait for one kind of message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()

    async def on_message(self, message: Any) -> None:
        self.messages.append(message)
        fields = sent_fields(message) if isinstance(message, BaseModel) else None
        emit("message", type=type(message).__name__, data=fields, problems=strict_problems(message))
        self._changed.set()

    async def on_error(self, error: Exception) -> None:
        code = getattr(error, "error_code", None)
        emit("error", error_type=type(error).__name__, message=str(error), error_code=code)

    async def on_close(self, _: Any) -> None:
        emit("closed")
        self.closed.set()

    async def wait_for(self, description: str, matches: Any) -> None:
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while not any(matches(message) for message in self.messages):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            fail(f"no {description} within {WAIT_SECONDS}s")


def _type(message: Any) -> str | None:
    return getattr(message, "type", None)


def from_finalize(message: Any) -> bool:
    return _type(message) == "Results" and bool(message.from_finalize)


async def main(first: Clip, second: Clip) -> None:
    transport_module.AsyncSageMakerRuntimeHTTP2Config = LocalRuntimeConfig
    factory = SageMakerTransportFactory(endpoint_name=endpoint_name(), region=region())

    def observed_factory(url: str, headers: dict[str, str]) -> Any:
        # What the SDK asks for; the transport is built from it unchanged (path and query, as sent).
        parsed = urlparse(url)
        emit("request", url=url, path=parsed.path.lstrip("/"), query=parsed.query)
        return factory(url, headers)

    client = AsyncDeepgramClient(api_key="unused", transport_factory=observed_factory)
    session = Session()
    async with client.listen.v1.connect(
        model="nova-3",
        language="en-US",
        encoding="linear16",
        sample_rate=str(first.sample_rate),
        channels=str(first.channels),
        interim_results="true",
        smart_format="true",
        utterance_end_ms=UTTERANCE_END_MS,
        vad_events="true",
    ) as connection:
        connection.on(EventType.MESSAGE, session.on_message)
        connection.on(EventType.ERROR, session.on_error)
        connection.on(EventType.CLOSE, session.on_close)
        listening = asyncio.create_task(connection.start_listening())

        padded = Clip(first.pcm + first.silence(TRAILING_SILENCE_SECONDS), first.sample_rate, first.channels)
        chunks = padded.frames(CHUNK_SECONDS)
        sent = 0
        async for chunk in real_time(chunks, CHUNK_SECONDS):
            if sent == len(chunks) // 2:
                await connection.send_keep_alive()
                emit("sent", message="KeepAlive")
            await connection.send_media(chunk)
            sent += 1
        await session.wait_for("UtteranceEnd", lambda message: _type(message) == "UtteranceEnd")

        cut = second.pcm[: int(CUT_SECONDS * second.sample_rate) * 2 * second.channels]
        for chunk in Clip(cut, second.sample_rate, second.channels).frames(CHUNK_SECONDS):
            await connection.send_media(chunk)
        await connection.send_finalize()
        emit("sent", message="Finalize")
        await session.wait_for("Results with from_finalize", from_finalize)

        await connection.send_close_stream()
        emit("sent", message="CloseStream")
        async with asyncio.timeout(WAIT_SECONDS):
            await session.closed.wait()
        await listening


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: deepgram_driver.py FIRST.wav SECOND.wav")
    try:
        asyncio.run(main(Clip.read(Path(sys.argv[1])), Clip.read(Path(sys.argv[2]))))
    except Exception as error:  # what the SDK raised to its caller, for the test's failure message
        fail(f"{type(error).__name__}: {error}")
