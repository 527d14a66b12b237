"""One ``v1/speak`` session: Speak, Flush, Clear and Close in; Metadata, audio, Flushed, Cleared out.

Speak text collects in a buffer; each complete sentence becomes a job at once, and Flush (or Close)
turns the rest into jobs. One task per session, the runner, takes the jobs in order: it has a
sentence synthesized on the model's engine thread and sends the audio while the sentence is still
being made, then sends ``Flushed`` when it reaches a flush's marker. ``on_text`` never waits for
speech, so a ``Clear`` is read while audio is going out.

Barge-in: every job and every chunk of audio carries the generation it was made in, and ``Clear``
starts a new one. Audio is sent under the session's send lock after checking its generation, and
``Cleared`` is sent under the same lock after the generation changed, so no audio of cleared text can
follow ``Cleared``; the engine is told to stop the sentence it is speaking at its next chunk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from model_server.logs import FIELDS
from model_server.model import CloseCode, Session, SessionHandler
from model_server.models.speak.audio import SentenceAudio
from model_server.models.speak.engine import Engine
from model_server.models.speak.messages import (
    SCHEMA_ERROR,
    Control,
    ControlType,
    MessageError,
    ModelInfo,
    cleared_message,
    error_message,
    flushed_message,
    metadata_message,
    parse_message,
    warning_message,
)
from model_server.models.speak.params import SpeakParams
from model_server.models.speak.text import SentenceBuffer

log = logging.getLogger("model_server.models.speak")

#: Deepgram's limit: 20 Flush messages in any 60 seconds; more get a Warning and are not processed.
MAX_FLUSHES = 20
FLUSH_WINDOW_SECONDS = 60.0
#: Text waiting to be spoken, buffered and queued (about 25 minutes of speech): more is refused with
#: an Error, so a client that sends faster than it listens cannot grow the server without bound.
MAX_PENDING_CHARACTERS = 20_000


@dataclass(frozen=True)
class SpeechRuntime:
    """What every session of the model shares: the engine and the one thread that runs it."""

    engine: Engine
    executor: Executor


@dataclass(frozen=True)
class _Sentence:
    generation: int
    text: str


@dataclass(frozen=True)
class _FlushMark:
    generation: int
    sequence_id: int


class _End:
    """Close's marker: everything before it has been spoken."""


_Job = _Sentence | _FlushMark | _End


class SpeakSession(SessionHandler):
    """Speaks one client's text in the voice, encoding and rate it asked for."""

    def __init__(
        self,
        session: Session,
        params: SpeakParams,
        runtime: SpeechRuntime,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._params = params
        self._runtime = runtime
        self._clock = clock
        self._model = ModelInfo(name=params.voice.name, version=runtime.engine.version)
        self._buffer = SentenceBuffer()
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._queued_characters = 0
        self._generation = 0
        self._next_sequence_id = 0
        self._flush_times: deque[float] = deque()
        self._send_lock = asyncio.Lock()
        self._closing = False
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"speak-{session.session_id}")

    async def on_text(self, text: str) -> None:
        if self._closing:
            return
        try:
            control = parse_message(text)
        except MessageError as error:
            await self._send_text(error_message(str(error), variant=SCHEMA_ERROR, message=text))
            return
        if control.type is ControlType.SPEAK:
            await self._speak(control)
        elif control.type is ControlType.FLUSH:
            await self._flush()
        elif control.type is ControlType.CLEAR:
            await self._clear()
        else:
            await self._close()

    async def on_end(self) -> None:
        self._closing = True
        self._generation += 1  # the engine stops at its next chunk
        self._runner.cancel()
        await asyncio.gather(self._runner, return_exceptions=True)

    async def _speak(self, control: Control) -> None:
        pending = len(self._buffer) + self._queued_characters
        if pending + len(control.text) > MAX_PENDING_CHARACTERS:
            await self._send_text(
                error_message(
                    f"{pending} characters are already waiting to be spoken; at most "
                    f"{MAX_PENDING_CHARACTERS} may wait (send Flush and read the audio, or Clear)",
                    variant="TEXT_LIMIT",
                )
            )
            return
        self._buffer.append(control.text)
        self._enqueue_sentences(self._buffer.complete_sentences())

    async def _flush(self) -> None:
        now = self._clock()
        while self._flush_times and now - self._flush_times[0] >= FLUSH_WINDOW_SECONDS:
            self._flush_times.popleft()
        if len(self._flush_times) >= MAX_FLUSHES:
            wait = FLUSH_WINDOW_SECONDS - (now - self._flush_times[0])
            await self._send_text(
                warning_message(
                    "FLUSH_LIMIT",
                    f"at most {MAX_FLUSHES} Flush messages in {FLUSH_WINDOW_SECONDS:g} seconds: this one "
                    f"is not processed (the text stays buffered); flush again in {wait:.0f} s",
                )
            )
            return
        self._flush_times.append(now)
        self._enqueue_sentences(self._buffer.rest())
        self._jobs.put_nowait(_FlushMark(self._generation, self._take_sequence_id()))

    async def _clear(self) -> None:
        self._generation += 1
        self._buffer.clear()
        while not self._jobs.empty():
            self._jobs.get_nowait()
        self._queued_characters = 0
        await self._send_text(cleared_message(self._take_sequence_id()))

    async def _close(self) -> None:
        """Speak what is left, then close normally (Deepgram's Close)."""
        self._closing = True
        self._enqueue_sentences(self._buffer.rest())
        self._jobs.put_nowait(_End())
        await asyncio.gather(self._runner, return_exceptions=True)
        await self._session.close(CloseCode.NORMAL, "")

    def _enqueue_sentences(self, sentences: list[str]) -> None:
        for sentence in sentences:
            self._queued_characters += len(sentence)
            self._jobs.put_nowait(_Sentence(self._generation, sentence))

    def _take_sequence_id(self) -> int:
        sequence_id, self._next_sequence_id = self._next_sequence_id, self._next_sequence_id + 1
        return sequence_id

    async def _send_text(self, text: str) -> None:
        async with self._send_lock:
            await self._session.send_text(text)

    async def _run(self) -> None:
        try:
            await self._send_text(metadata_message(request_id=self._session.session_id, model=self._model))
            while True:
                job = await self._jobs.get()
                if isinstance(job, _End):
                    return
                if job.generation != self._generation:
                    continue  # cleared while it waited
                if isinstance(job, _Sentence):
                    self._queued_characters -= len(job.text)
                    await self._speak_sentence(job)
                else:
                    async with self._send_lock:
                        if job.generation == self._generation:
                            await self._session.send_text(flushed_message(job.sequence_id))
        except ConnectionError:
            return  # the client has gone; the server ends the session
        except Exception:
            log.exception(
                "speech failed; closing the session with 1011",
                extra={FIELDS: {"event": "model_error", "session_id": self._session.session_id}},
            )
            await self._session.close(CloseCode.INTERNAL_ERROR, "internal error in the model")

    async def _speak_sentence(self, job: _Sentence) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

        def sink(audio: bytes) -> bool:  # on the engine thread
            if self._generation != job.generation:
                return False
            if audio:
                try:
                    loop.call_soon_threadsafe(chunks.put_nowait, audio)
                except RuntimeError:  # the event loop has closed: the server is gone
                    return False
            return True

        work = loop.run_in_executor(self._runtime.executor, self._synthesize, job.text, sink)
        # Runs after every chunk the engine handed over: both reach the loop through call_soon_threadsafe.
        work.add_done_callback(lambda _: chunks.put_nowait(None))
        while (chunk := await chunks.get()) is not None:
            async with self._send_lock:
                if job.generation != self._generation:
                    continue  # cleared: drop what is left of it
                await self._session.send_bytes(chunk)
            # A send into a roomy socket buffer does not yield: let the session read a Clear meanwhile.
            await asyncio.sleep(0)
        await work

    def _synthesize(self, text: str, sink: Callable[[bytes], bool]) -> None:
        """On the engine thread: speak ``text``, resample and encode each chunk, hand it to ``sink``."""
        audio = SentenceAudio(
            input_rate=self._runtime.engine.sample_rate,
            output_rate=self._params.sample_rate,
            encoding=self._params.encoding,
        )
        if self._runtime.engine.speak(text, self._params.voice.espeak, lambda pcm: sink(audio.push(pcm))):
            sink(audio.finish())
