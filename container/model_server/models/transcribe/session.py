"""One ``v1/listen`` session: binary audio and JSON control messages in, Deepgram-style results out.

Decoding runs on the model's one decoding thread, never on the event loop, in slices of at most
``DECODE_SLICE_SECONDS`` of audio: a client that sends a minute of audio in one frame waits for its
own results, while other sessions' slices take turns on the thread in between.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model_server.model import CloseCode, Session, SessionError, SessionHandler
from model_server.models.transcribe.audio import AudioFormatError, PcmInput
from model_server.models.transcribe.decoder import DecoderPool
from model_server.models.transcribe.messages import (
    ControlMessageError,
    ControlType,
    ModelInfo,
    error_message,
    metadata_message,
    parse_control,
    results_message,
)
from model_server.models.transcribe.params import SAMPLE_RATE, SAMPLE_WIDTH, ListenParams
from model_server.models.transcribe.recognizer import StreamRecognizer, Transcript

DECODE_SLICE_SECONDS = 0.25
DECODE_SLICE_BYTES = int(DECODE_SLICE_SECONDS * SAMPLE_RATE) * SAMPLE_WIDTH


@dataclass(frozen=True)
class DecodingRuntime:
    """What every session of the model shares: the decoder pool and the thread that runs decoders."""

    pool: DecoderPool
    executor: Executor
    model_info: ModelInfo


class TranscribeSession(SessionHandler):
    """Streams one client's audio through its own decoder."""

    def __init__(self, session: Session, params: ListenParams, runtime: DecodingRuntime) -> None:
        self._session = session
        self._params = params
        self._runtime = runtime
        self._input = PcmInput()
        self._sha256 = hashlib.sha256()
        self._created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._stream: StreamRecognizer | None = None
        self._decoder: Any = None
        self._closed = False

    async def on_binary(self, data: bytes) -> None:
        if self._closed:
            return
        self._sha256.update(data)
        try:
            pcm = self._input.push(data)
        except AudioFormatError as error:
            await self._session.send_text(error_message(str(error), variant="DATA-0000"))
            raise SessionError(CloseCode.INVALID_PAYLOAD, f"DATA-0000: {error}") from None
        if not pcm:
            return
        stream = await self._recognizer()
        for offset in range(0, len(pcm), DECODE_SLICE_BYTES):
            results = await self._decode(stream.accept, pcm[offset : offset + DECODE_SLICE_BYTES])
            await self._send_results(results)

    async def on_text(self, text: str) -> None:
        if self._closed:
            return
        try:
            control = parse_control(text)
        except ControlMessageError as error:
            await self._session.send_text(error_message(str(error), variant="INVALID_MESSAGE"))
            return
        if control is ControlType.KEEP_ALIVE:
            return
        if control is ControlType.FINALIZE:
            stream = await self._recognizer()
            await self._send_results(await self._decode(lambda: stream.finalize(from_finalize=True)))
            return
        # CloseStream: the last results, the Metadata message, then a normal close.
        self._closed = True
        if self._stream is not None:
            stream = self._stream
            await self._send_results(
                await self._decode(lambda: stream.finalize(from_finalize=False, closing=True))
            )
        duration = self._stream.audio_seconds if self._stream is not None else 0.0
        await self._session.send_text(
            metadata_message(
                request_id=self._session.session_id,
                created=self._created,
                duration=duration,
                sha256=self._sha256.hexdigest(),
                model=self._runtime.model_info,
            )
        )
        await self._session.close(CloseCode.NORMAL, "")

    async def on_end(self) -> None:
        self._closed = True
        if self._decoder is None:
            return
        stream, decoder = self._stream, self._decoder
        self._stream = self._decoder = None

        def release() -> None:
            if stream is not None:
                stream.close()
            self._runtime.pool.release(decoder)

        await self._decode(release)

    async def _recognizer(self) -> StreamRecognizer:
        if self._stream is None:
            self._decoder = await self._decode(self._runtime.pool.acquire)
            self._stream = StreamRecognizer(
                self._decoder,
                interim_results=self._params.interim_results,
                endpointing_ms=self._params.endpointing_ms,
            )
        return self._stream

    async def _decode[T](self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._runtime.executor, work, *args)

    async def _send_results(self, results: list[Transcript]) -> None:
        for transcript in results:
            await self._session.send_text(
                results_message(
                    transcript,
                    request_id=self._session.session_id,
                    model=self._runtime.model_info,
                    punctuate=self._params.punctuate,
                )
            )
