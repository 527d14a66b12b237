"""The engine's 16-bit samples turned into what the client asked for: its rate, then its encoding.

Resampling is soxr's streaming resampler (one per sentence, so its filter state never spans a
barge-in). G.711 follows ITU-T G.711 as the reference C code everyone uses implements it (Sun's
``g711.c``, also behind CPython's ``audioop``): mu-law on the top 14 bits of a sample, A-law on the top
13, with its even-bit inversion. Both are 65,536-entry lookup tables built once at import.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt
import soxr

#: Segment ends of the reference encoder (magnitudes after scaling to 14 or 13 bits).
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_CLIP = 8159
_ULAW_BIAS = 0x84 >> 2


class Encoding(StrEnum):
    """The encodings Deepgram's streaming ``v1/speak`` sends."""

    LINEAR16 = "linear16"  # 16-bit signed little-endian PCM
    MULAW = "mulaw"  # G.711 mu-law, one byte a sample
    ALAW = "alaw"  # G.711 A-law, one byte a sample


def _every_sample() -> npt.NDArray[np.int32]:
    return np.arange(-32768, 32768, dtype=np.int32)


def _ulaw_table() -> npt.NDArray[np.uint8]:
    value = _every_sample() >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _alaw_table() -> npt.NDArray[np.uint8]:
    value = _every_sample() >> 3
    negative = value < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


#: Indexed by sample + 32768.
ULAW_TABLE = _ulaw_table()
ALAW_TABLE = _alaw_table()


def encode(samples: npt.NDArray[np.int16], encoding: Encoding) -> bytes:
    """``samples`` as the bytes of ``encoding``."""
    if encoding is Encoding.LINEAR16:
        return samples.astype("<i2", copy=False).tobytes()
    table = ULAW_TABLE if encoding is Encoding.MULAW else ALAW_TABLE
    return bytes(table[samples.astype(np.int32) + 32768])


def bytes_per_sample(encoding: Encoding) -> int:
    return 2 if encoding is Encoding.LINEAR16 else 1


class SentenceAudio:
    """One sentence's audio on its way out: the engine's chunks in, the client's bytes out."""

    def __init__(self, *, input_rate: int, output_rate: int, encoding: Encoding) -> None:
        self._encoding = encoding
        self._resampler = (
            soxr.ResampleStream(input_rate, output_rate, 1, dtype="int16", quality="HQ")
            if input_rate != output_rate
            else None
        )

    def push(self, pcm: bytes) -> bytes:
        """Encoded audio for a chunk of native-endian 16-bit samples (may be empty: filter delay)."""
        samples = np.frombuffer(pcm, dtype=np.int16)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return encode(samples, self._encoding)

    def finish(self) -> bytes:
        """What the resampler still holds at the end of the sentence."""
        if self._resampler is None:
            return b""
        return encode(self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True), self._encoding)
