"""``bidistream invoke``: stream text lines or a WAV file to an endpoint, print responses as they arrive.

Text (``--text`` or stdin lines) goes as UTF8 parts; when the input ends the stream's input is closed
and the answers still in flight are printed. Audio (``--audio``) goes as BINARY parts at real time,
then ``{"type":"CloseStream"}``, and the model's own close ends the stream; ``Results`` messages are
shown as a transcript (see ``transcript``). With ``--output`` the text is spoken instead (``v1/speak``):
each line goes as a Speak message, then Close, and the binary audio that comes back is written to a
WAV file (see ``speech``). Responses go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from aws_sdk_sagemaker_runtime_http2.models import ModelStreamError  # type: ignore[import-untyped]

from bidistream.audio import CHUNK_SECONDS, AudioFileError, PcmAudio, paced, read_wav
from bidistream.client import BidiStream, Part, StreamTarget, Timeouts, open_stream, send_while_receiving
from bidistream.errors import ExitCode, describe
from bidistream.speech import CLOSE, SpeechFormat, SpeechFormatError, speak_message, write_wav
from bidistream.transcript import TranscriptPrinter

CLOSE_STREAM = '{"type":"CloseStream"}'
NORMAL_CLOSURE = "1000"


@dataclass(frozen=True)
class InvokeInput:
    """What to send: ``texts``, else ``audio``, else lines from stdin."""

    texts: tuple[str, ...] = ()
    audio: Path | None = None
    speed: float = 1.0  # audio pace, times real time
    output: Path | None = None  # speak the text; write the audio here as WAV


async def run_invoke(
    target: StreamTarget,
    timeouts: Timeouts,
    source: InvokeInput,
    *,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    tty: bool,
    claim_error: Callable[[Exception], ExitCode | None] | None = None,
) -> ExitCode:
    """Run one invocation; every failure ends in one line on stderr and its exit code.

    ``claim_error`` may take a failure over (it returns the exit code) before it is reported.
    """
    audio: PcmAudio | None = None
    if source.audio is not None:
        try:
            audio = read_wav(source.audio)
        except (AudioFileError, OSError) as error:
            stderr.write(f"bidistream: {source.audio}: {error}\n")
            return ExitCode.USAGE
        if target.query_string is None:
            target = dataclasses.replace(target, query_string=audio.query_string)
    speech: SpeechFormat | None = None
    if source.output is not None:
        try:
            speech = SpeechFormat.from_query(target.query_string)
        except SpeechFormatError as error:
            stderr.write(f"bidistream: --output: {error}\n")
            return ExitCode.USAGE
    printer = _ResponsePrinter(
        stdout, stderr, tty=tty, transcript=audio is not None, keep_audio=speech is not None
    )
    code = await _stream(target, timeouts, source, audio, printer, stdin, stderr, claim_error)
    if speech is not None and source.output is not None and code is ExitCode.OK:
        write_wav(source.output, bytes(printer.audio), speech)
        stderr.write(f"bidistream: wrote {source.output}: {speech.describe(len(printer.audio))}\n")
    return code


async def _stream(
    target: StreamTarget,
    timeouts: Timeouts,
    source: InvokeInput,
    audio: PcmAudio | None,
    printer: _ResponsePrinter,
    stdin: TextIO,
    stderr: TextIO,
    claim_error: Callable[[Exception], ExitCode | None] | None,
) -> ExitCode:
    try:
        async with open_stream(target, timeouts) as stream:
            await send_while_receiving(_send(stream, source, audio, stdin), _receive(stream, printer))
    except StdinNotUtf8 as error:
        printer.finish()
        stderr.write(f"bidistream: {error}\n")
        return ExitCode.USAGE
    except ModelStreamError as error:
        if error.error_code == NORMAL_CLOSURE:
            printer.finish()
            stderr.write(f"bidistream: the model closed the stream normally (1000): {error.message}\n")
            return ExitCode.OK
        printer.finish()
        return _fail(error, stderr)
    except Exception as error:
        printer.finish()
        if claim_error is not None and (claimed := claim_error(error)) is not None:
            return claimed
        return _fail(error, stderr)
    printer.finish()
    return ExitCode.OK


def _fail(error: BaseException, stderr: TextIO) -> ExitCode:
    code, message = describe(error)
    stderr.write(f"bidistream: {message}\n")
    return code


async def _send(stream: BidiStream, source: InvokeInput, audio: PcmAudio | None, stdin: TextIO) -> None:
    if audio is not None:
        async for chunk in paced(audio.chunks(CHUNK_SECONDS), CHUNK_SECONDS, source.speed):
            await stream.send(Part.binary(chunk))
        await stream.send(Part.text(CLOSE_STREAM))
        return  # the model closes the stream once it has answered everything
    lines: AsyncIterator[str] = _iterate(source.texts) if source.texts else _stdin_lines(stdin)
    async for line in lines:
        await stream.send(Part.text(speak_message(line) if source.output is not None else line))
    if source.output is not None:
        await stream.send(Part.text(CLOSE))
        return  # Close speaks what is left; the model closes the stream once it has
    await stream.close_input()


async def _receive(stream: BidiStream, printer: _ResponsePrinter) -> None:
    while (part := await stream.receive()) is not None:
        printer.show(part)


async def _iterate(texts: Iterable[str]) -> AsyncIterator[str]:
    for text in texts:
        yield text


class StdinNotUtf8(ValueError):
    """Stdin holds bytes that are not UTF-8; ``offset`` is where the first bad one is (0-based)."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"stdin is not valid UTF-8 at byte {offset}")
        self.offset = offset


def _decoded_lines(stdin: TextIO) -> Iterator[str]:
    """Stdin's lines without their line ends; raises ``StdinNotUtf8`` at the first undecodable byte."""
    binary: BinaryIO | None = getattr(stdin, "buffer", None)
    if binary is None:  # already text (a StringIO, say): nothing to decode
        for line in stdin:
            yield line.rstrip("\r\n")
        return
    offset = 0
    for raw in binary:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StdinNotUtf8(offset + error.start) from None
        offset += len(raw)
        yield line.rstrip("\r\n")


async def _stdin_lines(stdin: TextIO) -> AsyncIterator[str]:
    # A daemon thread reads stdin, so a blocked read on a terminal never holds up the exit.
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | StdinNotUtf8 | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in _decoded_lines(stdin):
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except StdinNotUtf8 as error:
            # Handed to the sender, which fails the stream at once (no waiting out the idle timeout).
            loop.call_soon_threadsafe(queue.put_nowait, error)
            return
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while (item := await queue.get()) is not None:
        if isinstance(item, StdinNotUtf8):
            raise item
        yield item


class _ResponsePrinter:
    """Text parts as text (fragments joined on one line), binary parts as a size, transcripts as such."""

    def __init__(
        self, out: TextIO, diagnostics: TextIO, *, tty: bool, transcript: bool, keep_audio: bool = False
    ) -> None:
        self._out = out
        self._keep_audio = keep_audio
        self.audio = bytearray()  # binary parts, kept (not shown) when the audio goes to a file
        self._diagnostics = diagnostics
        self._transcript = TranscriptPrinter(out, diagnostics, tty=tty) if transcript else None
        self._message = bytearray()  # a fragmented UTF8 message being assembled for the transcript
        self._mid_line = False

    def show(self, part: Part) -> None:
        if self._transcript is not None and part.is_text:
            self._message += part.data
            if part.is_final:
                self._transcript.show(bytes(self._message))
                self._message.clear()
            return
        if not part.is_text and self._keep_audio:
            self.audio += part.data
            return
        if part.is_text:
            self._out.write(part.data.decode(errors="replace"))
        else:
            self._out.write(f"[{len(part.data)} bytes binary]")
        self._mid_line = not part.is_final
        if part.is_final:
            self._out.write("\n")
        self._out.flush()

    def finish(self) -> None:
        if self._transcript is not None:
            self._transcript.finish()
        if self._mid_line:
            self._out.write("\n")
            self._out.flush()
            self._mid_line = False
