"""Binary frames in, whole 16-bit samples out: WAV header recognition and frame-boundary bookkeeping.

A client may send PCM in frames of any size, so a sample can be split across two frames (an odd byte
count); the odd byte waits for the next frame. A WAV file's header at the very start of the stream is
recognised, checked against what the model decodes, and stripped; audio after it is plain PCM.

What cannot be checked: headerless audio is taken to be 16 kHz mono linear16, because any byte string
is a valid sequence of 16-bit samples. Audio in another encoding (mu-law, 8 kHz, stereo, MP3) sent
without a header decodes to noise and comes back as no words or wrong words, never as a crash.
"""

from __future__ import annotations

import struct

from model_server.models.transcribe.params import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: A header larger than this is not a header a client means to send before live audio.
MAX_HEADER_BYTES = 64 * 1024
RIFF_PREFIX_BYTES = 12  # "RIFF", size, "WAVE"
CHUNK_HEADER_BYTES = 8  # id, size


class AudioFormatError(ValueError):
    """The stream's WAV header describes audio this model does not decode."""


class PcmInput:
    """Turns a session's binary frames into whole little-endian 16-bit samples."""

    def __init__(self) -> None:
        self._pending = b""
        self._header_done = False
        self.header_seen = False

    def push(self, data: bytes) -> bytes:
        """Bytes of whole samples from ``data`` and what was left over before it (may be empty)."""
        buffer = self._pending + data
        if not self._header_done:
            if len(buffer) < 4 and b"RIFF".startswith(buffer):
                self._pending = buffer  # too short to tell yet
                return b""
            if buffer.startswith(b"RIFF"):
                header_end = _wav_header_end(buffer)
                if header_end is None:
                    if len(buffer) > MAX_HEADER_BYTES:
                        raise AudioFormatError(
                            f"the WAV header is over {MAX_HEADER_BYTES} bytes without a data chunk"
                        )
                    self._pending = buffer
                    return b""
                self.header_seen = True
                buffer = buffer[header_end:]
            self._header_done = True
        whole = len(buffer) - len(buffer) % SAMPLE_WIDTH
        self._pending = buffer[whole:]
        return buffer[:whole]


def _wav_header_end(buffer: bytes) -> int | None:
    """The offset of the first audio byte after a complete, valid header; None if more is needed."""
    if len(buffer) < RIFF_PREFIX_BYTES:
        return None
    if buffer[8:12] != b"WAVE":
        raise AudioFormatError("the stream starts with RIFF but is not a WAVE file")
    offset = RIFF_PREFIX_BYTES
    format_checked = False
    while len(buffer) >= offset + CHUNK_HEADER_BYTES:
        chunk_id = buffer[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", buffer, offset + 4)
        body = offset + CHUNK_HEADER_BYTES
        if chunk_id == b"data":
            if not format_checked:
                raise AudioFormatError("the WAV header has no fmt chunk before its data chunk")
            return body  # the data size is ignored: a live stream's header cannot know it
        if body + chunk_size > MAX_HEADER_BYTES:
            raise AudioFormatError(f"the WAV header is over {MAX_HEADER_BYTES} bytes without a data chunk")
        if len(buffer) < body + chunk_size:
            return None
        if chunk_id == b"fmt ":
            _check_format(buffer[body : body + chunk_size])
            format_checked = True
        offset = body + chunk_size + chunk_size % 2  # RIFF chunks are padded to an even size
    return None


def _check_format(fmt: bytes) -> None:
    if len(fmt) < 16:
        raise AudioFormatError("the WAV fmt chunk is shorter than 16 bytes")
    format_code, channels, sample_rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if format_code == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        (format_code,) = struct.unpack_from("<H", fmt, 24)  # the sub-format GUID starts with the code
    problems = []
    if format_code != WAVE_FORMAT_PCM:
        problems.append(f"format code {format_code:#06x} (not PCM)")
    if bits != SAMPLE_WIDTH * 8:
        problems.append(f"{bits}-bit samples")
    if channels != CHANNELS:
        problems.append(f"{channels} channels")
    if sample_rate != SAMPLE_RATE:
        problems.append(f"{sample_rate} Hz")
    if problems:
        raise AudioFormatError(
            f"the WAV header says {', '.join(problems)}; this model decodes {SAMPLE_RATE} Hz mono "
            "16-bit PCM (linear16)"
        )
