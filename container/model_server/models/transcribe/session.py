"""One ``v1/listen`` session: binary audio and JSON control messages in, Deepgram-style results out.

Decoding runs in the model's worker processes (``workers.py``), never on the event loop, in slices
of at most ``DECODE_SLICE_SECONDS`` of audio: a client that sends a minute of audio in one frame waits
for its own results, while other sessions' slices take turns on the worker in between. Results are
formatted on the model's one formatting thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from model_server.model import CloseCode, Session, SessionError, SessionHandler
from model_server.models.transcribe.audio import AudioFormat, AudioFormatError, PcmInput
from model_server.models.transcribe.convert import Converter
from model_server.models.transcribe.formatting import Formatter
from model_server.models.transcribe.messages import (
    SCHEMA_ERROR,
    ConfigureFailureCode,
    Control,
    ControlMessageError,
    ControlType,
    ModelInfo,
    configure_failure_message,
    configure_success_message,
    error_message,
    metadata_message,
    parse_control,
    results_message,
    speech_started_message,
    utterance_end_message,
)
from model_server.models.transcribe.params import SAMPLE_RATE, SAMPLE_WIDTH, SWITCHABLE_FEATURES, ListenParams
from model_server.models.transcribe.recognizer import SpeechStart, Transcript
from model_server.models.transcribe.workers import RemoteStream, WorkerPool

DECODE_SLICE_SECONDS = 0.25
DECODE_SLICE_BYTES = int(DECODE_SLICE_SECONDS * SAMPLE_RATE) * SAMPLE_WIDTH


class DecoderBudget:
    """Decoders every session together may hold (``TRANSCRIBE_MAX_SESSIONS``): a multichannel session
    holds one per channel, so the server's count of sessions alone would not bound the memory.
    Used on the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, count: int) -> bool:
        if self.held + count > self.limit:
            return False
        self.held += count
        return True

    def give_back(self, count: int) -> None:
        self.held -= count


@dataclass(frozen=True)
class DecodingRuntime:
    """What every session of the model shares: the decoding workers, the formatting thread, the
    formatter and the decoder budget."""

    workers: WorkerPool
    executor: Executor
    model_info: ModelInfo
    formatter: Formatter
    budget: DecoderBudget


@dataclass
class Channel:
    """One decoded channel of a session: its recognizer and its UtteranceEnd bookkeeping."""

    index: tuple[int, int]  # Deepgram's channel_index: [this channel, channels]
    stream: RemoteStream
    #: End of the last word sent; set while an UtteranceEnd for it is still due.
    last_word_end: float | None = None


class TranscribeSession(SessionHandler):
    """Streams one client's audio through its own decoder (one per channel with multichannel=true)."""

    def __init__(self, session: Session, params: ListenParams, runtime: DecodingRuntime) -> None:
        self._session = session
        self._params = params
        self._runtime = runtime
        self._formatting = params.formatting
        self._input = PcmInput(
            AudioFormat(params.encoding, params.sample_rate, params.channels), params.explicit_format
        )
        self._converter: Converter | None = None
        self._channels: list[Channel] = []
        self._frames = 0  # source frames received
        self._sha256 = hashlib.sha256()
        self._created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._closed = False

    async def on_binary(self, data: bytes) -> None:
        if self._closed:
            return
        self._sha256.update(data)
        try:
            frames = self._input.push(data)
            if self._converter is not None and self._converter.source != self._input.format:
                raise AudioFormatError("a WAV header must come first: a Finalize before it set the format")
        except AudioFormatError as error:
            await self._session.send_text(error_message(str(error), variant="DATA-0000"))
            raise SessionError(CloseCode.INVALID_PAYLOAD, f"DATA-0000: {error}") from None
        if not frames:
            return
        converter = await self._open_channels()
        self._frames += len(frames) // converter.source.frame_bytes
        await self._decode_all(converter.convert(frames))

    async def on_text(self, text: str) -> None:
        if self._closed:
            return
        try:
            control = parse_control(text)
        except ControlMessageError as error:
            await self._session.send_text(error_message(str(error), variant=SCHEMA_ERROR, message=text))
            return
        if control.type is ControlType.KEEP_ALIVE:
            return
        if control.type is ControlType.CONFIGURE:
            await self._session.send_text(self._configure(control))
            return
        if control.type is ControlType.FINALIZE:
            await self._open_channels()
            await self._flush(from_finalize=True)
            return
        # CloseStream: the last results, the Metadata message, then a normal close.
        self._closed = True
        if self._channels:
            await self._flush(from_finalize=False)
        source = self._input.format
        await self._session.send_text(
            metadata_message(
                request_id=self._session.session_id,
                created=self._created,
                duration=self._frames / source.sample_rate,
                sha256=self._sha256.hexdigest(),
                channels=source.channels,
                model=self._runtime.model_info,
                extra=dict(self._params.extra),
                tags=list(self._params.tags),
            )
        )
        await self._session.close(CloseCode.NORMAL, "")

    async def on_end(self) -> None:
        self._closed = True
        channels, self._channels = self._channels, []
        if self._converter is not None:
            self._runtime.budget.give_back(self._converter.outputs)

        for channel in channels:
            await channel.stream.close()

    def _configure(self, control: Control) -> str:
        """Apply a ``Configure`` (formatting switches, keyterms); the answer to send."""
        request_id = self._session.session_id
        features = control.body.get("features")
        keyterms = control.body.get("keyterms")
        if keyterms:
            return configure_failure_message(
                request_id=request_id,
                code=ConfigureFailureCode.KEYTERMS_NOT_SUPPORTED,
                description="this model cannot boost keyterms (its language model is shared and fixed)",
            )
        changes: dict[str, bool] = {}
        if features is not None:
            if not isinstance(features, dict) or not all(isinstance(on, bool) for on in features.values()):
                return configure_failure_message(
                    request_id=request_id,
                    code=ConfigureFailureCode.INTERNAL_ERROR,
                    description='"features" must be an object of feature names to true or false',
                )
            unknown = sorted(set(features) - set(SWITCHABLE_FEATURES))
            if unknown:
                return configure_failure_message(
                    request_id=request_id,
                    code=ConfigureFailureCode.INTERNAL_ERROR,
                    description=f"feature(s) {', '.join(unknown)} cannot be switched mid-stream; "
                    f"these can: {', '.join(SWITCHABLE_FEATURES)}",
                )
            changes = features
        if keyterms is not None and not isinstance(keyterms, list):
            return configure_failure_message(
                request_id=request_id,
                code=ConfigureFailureCode.INTERNAL_ERROR,
                description='"keyterms" must be an array of strings',
            )
        self._formatting = replace(self._formatting, **cast(dict[str, Any], changes))
        return configure_success_message(request_id=request_id, keyterms=[] if keyterms is not None else None)

    async def _open_channels(self) -> Converter:
        """The converter and one recognizer per output channel, made when the first audio (or a
        Finalize) arrives, once a WAV header could have told the format."""
        if self._converter is None:
            converter = Converter(self._input.format, multichannel=self._params.multichannel)
            outputs = converter.outputs
            budget = self._runtime.budget
            if not budget.take(outputs):
                raise SessionError(
                    CloseCode.TRY_AGAIN_LATER,
                    f"{outputs} channel(s) need {outputs} decoder(s); {budget.held} of this model's "
                    f"{budget.limit} are in use (TRANSCRIBE_MAX_SESSIONS)",
                )
            self._converter = converter
            options = {
                "interim_results": self._params.interim_results,
                "endpointing_ms": self._params.endpointing_ms,
                "vad_events": self._params.vad_events,
            }
            for number in range(outputs):
                stream = await self._runtime.workers.open_stream(options, self._worker_lost)
                self._channels.append(Channel(index=(number, outputs), stream=stream))
        return self._converter

    async def _decode_all(self, pcm: list[bytes]) -> None:
        """Decode each channel's PCM in slices, taking turns between channels."""
        longest = max((len(part) for part in pcm), default=0)
        for offset in range(0, longest, DECODE_SLICE_BYTES):
            for channel, part in zip(self._channels, pcm, strict=True):
                piece = part[offset : offset + DECODE_SLICE_BYTES]
                if piece:
                    events = await channel.stream.accept(piece)
                    await self._send(await self._run(self._render, channel, events))

    async def _flush(self, *, from_finalize: bool) -> None:
        """Decode what the resamplers hold, then end every channel's utterance."""
        if self._converter is not None:
            await self._decode_all(self._converter.flush())
        closing = not from_finalize
        for channel in self._channels:
            events = await channel.stream.finalize(from_finalize=from_finalize, closing=closing)
            await self._send(await self._run(self._render, channel, events))

    async def _worker_lost(self, reason: str) -> None:
        """The worker decoding this session died while it waited for the client: end it with 1011."""
        await self._session.close(CloseCode.INTERNAL_ERROR, reason)

    def _render(self, channel: Channel, events: list[Transcript | SpeechStart]) -> list[str]:
        """Turn a channel's events into messages (formatting included), on the formatting thread."""
        messages = []
        for event in events:
            if isinstance(event, SpeechStart):
                messages.append(speech_started_message(channel=channel.index, timestamp=event.timestamp))
                continue
            tokens = self._runtime.formatter.format(event.words, self._formatting, is_final=event.is_final)
            messages.append(
                results_message(
                    event,
                    tokens,
                    channel=channel.index,
                    request_id=self._session.session_id,
                    model=self._runtime.model_info,
                    extra=dict(self._params.extra),
                )
            )
            if event.words:
                channel.last_word_end = max(word.end for word in event.words)
        gap = self._params.utterance_end_ms
        last = channel.last_word_end
        if gap is not None and last is not None and channel.stream.audio_seconds - last >= gap / 1000:
            messages.append(utterance_end_message(channel=channel.index, last_word_end=last))
            channel.last_word_end = None
        return messages

    async def _run[T](self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._runtime.executor, work, *args)

    async def _send(self, messages: list[str]) -> None:
        for message in messages:
            await self._session.send_text(message)
