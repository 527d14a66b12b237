"""Binary frames in, whole audio frames out: WAV header recognition and frame-boundary bookkeeping.

A client may send audio in messages of any size, so a sample (or one channel's sample of a frame) can
be split across two messages; the remainder waits for the next one. A WAV file's header at the very
start of the stream is recognised and stripped: it must agree with the encoding, sample rate and
channels the query set, and it supplies those the query left out.

What cannot be checked: headerless audio is taken to be what the query says (by default 16 kHz mono
linear16), because any byte string is a valid sequence of samples. Audio in another encoding sent
without a header decodes to noise and comes back as no words or wrong words, never as a crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from model_server.models.transcribe.params import (
    CHANNELS,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
    Encoding,
)

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: A header larger than this is not a header a client means to send before live audio.
MAX_HEADER_BYTES = 64 * 1024
RIFF_PREFIX_BYTES = 12  # "RIFF", size, "WAVE"
CHUNK_HEADER_BYTES = 8  # id, size
WAV_ENCODINGS = {
    WAVE_FORMAT_PCM: Encoding.LINEAR16,
    WAVE_FORMAT_MULAW: Encoding.MULAW,
    WAVE_FORMAT_ALAW: Encoding.ALAW,
}
ALL_FIELDS = frozenset({"encoding", "sample_rate", "channels"})


@dataclass(frozen=True)
class AudioFormat:
    """A stream's raw audio: encoding, rate and interleaved channels."""

    encoding: Encoding = Encoding.LINEAR16
    sample_rate: int = SAMPLE_RATE
    channels: int = CHANNELS

    @property
    def sample_width(self) -> int:
        return 2 if self.encoding is Encoding.LINEAR16 else 1

    @property
    def frame_bytes(self) -> int:
        return self.sample_width * self.channels


class AudioFormatError(ValueError):
    """The stream's WAV header describes audio this model does not decode."""


class PcmInput:
    """Turns a session's binary messages into whole frames of ``format``."""

    def __init__(self, declared: AudioFormat | None = None, explicit: frozenset[str] = ALL_FIELDS) -> None:
        """``declared``: the query's format; ``explicit``: which of its fields the client set."""
        self.format = declared or AudioFormat()
        self._explicit = explicit
        self._pending = b""
        self._header_done = False
        self.header_seen = False

    def push(self, data: bytes) -> bytes:
        """Bytes of whole frames from ``data`` and what was left over before it (may be empty)."""
        buffer = self._pending + data
        if not self._header_done:
            if len(buffer) < 4 and b"RIFF".startswith(buffer):
                self._pending = buffer  # too short to tell yet
                return b""
            if buffer.startswith(b"RIFF"):
                found = _wav_header(buffer)
                if found is None:
                    if len(buffer) > MAX_HEADER_BYTES:
                        raise AudioFormatError(
                            f"the WAV header is over {MAX_HEADER_BYTES} bytes without a data chunk"
                        )
                    self._pending = buffer
                    return b""
                header_end, header_format = found
                self.format = self._reconcile(header_format)
                self.header_seen = True
                buffer = buffer[header_end:]
            self._header_done = True
        whole = len(buffer) - len(buffer) % self.format.frame_bytes
        self._pending = buffer[whole:]
        return buffer[:whole]

    def _reconcile(self, header: AudioFormat) -> AudioFormat:
        """The header's format, unless it contradicts what the query set."""
        problems = [
            f"{header.sample_rate} Hz"
            if name == "sample_rate"
            else f"{header.channels} channels"
            if name == "channels"
            else f"{header.encoding} encoding"
            for name in sorted(self._explicit)
            if getattr(header, name) != getattr(self.format, name)
        ]
        if problems:
            declared = self.format
            raise AudioFormatError(
                f"the WAV header says {', '.join(problems)}; the query declared {declared.encoding} at "
                f"{declared.sample_rate} Hz with {declared.channels} channel(s) (leave encoding, sample_rate "
                "and channels out of the query to take them from the header)"
            )
        return replace(header)


def _wav_header(buffer: bytes) -> tuple[int, AudioFormat] | None:
    """The offset of the first audio byte after a complete, valid header and the format it declares;
    None if more is needed."""
    if len(buffer) < RIFF_PREFIX_BYTES:
        return None
    if buffer[8:12] != b"WAVE":
        raise AudioFormatError("the stream starts with RIFF but is not a WAVE file")
    offset = RIFF_PREFIX_BYTES
    audio_format: AudioFormat | None = None
    while len(buffer) >= offset + CHUNK_HEADER_BYTES:
        chunk_id = buffer[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", buffer, offset + 4)
        body = offset + CHUNK_HEADER_BYTES
        if chunk_id == b"data":
            if audio_format is None:
                raise AudioFormatError("the WAV header has no fmt chunk before its data chunk")
            return body, audio_format  # the data size is ignored: a live stream's header cannot know it
        if body + chunk_size > MAX_HEADER_BYTES:
            raise AudioFormatError(f"the WAV header is over {MAX_HEADER_BYTES} bytes without a data chunk")
        if len(buffer) < body + chunk_size:
            return None
        if chunk_id == b"fmt ":
            audio_format = _read_format(buffer[body : body + chunk_size])
        offset = body + chunk_size + chunk_size % 2  # RIFF chunks are padded to an even size
    return None


def _read_format(fmt: bytes) -> AudioFormat:
    if len(fmt) < 16:
        raise AudioFormatError("the WAV fmt chunk is shorter than 16 bytes")
    format_code, channels, sample_rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if format_code == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        (format_code,) = struct.unpack_from("<H", fmt, 24)  # the sub-format GUID starts with the code
    encoding = WAV_ENCODINGS.get(format_code)
    problems = []
    if encoding is None:
        problems.append(f"format code {format_code:#06x} (not PCM, mu-law or A-law)")
    elif bits != (16 if encoding is Encoding.LINEAR16 else 8):
        problems.append(f"{bits}-bit samples")
    if not 1 <= channels <= MAX_CHANNELS:
        problems.append(f"{channels} channels")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        problems.append(f"{sample_rate} Hz")
    if problems or encoding is None:
        raise AudioFormatError(
            f"the WAV header says {', '.join(problems)}; this model decodes 16-bit PCM (linear16), 8-bit "
            f"mu-law or A-law, {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, with 1 to {MAX_CHANNELS} channels"
        )
    return AudioFormat(encoding=encoding, sample_rate=sample_rate, channels=channels)
