"""Any accepted raw audio to what the acoustic model decodes: 16 kHz mono 16-bit PCM per channel.

G.711 (mu-law, A-law) is expanded to 16-bit samples through the standard's 256-entry tables;
interleaved channels are mixed down (their mean) or split, one stream per channel; any rate is
resampled with libsoxr (``soxr``), streaming, so a frame boundary never clicks.
"""

from __future__ import annotations

import numpy as np
import soxr

from model_server.models.transcribe.audio import AudioFormat
from model_server.models.transcribe.params import SAMPLE_RATE, Encoding


def _mulaw_table() -> np.ndarray:
    """ITU-T G.711 mu-law: bytes are stored inverted; sign, 3-bit exponent, 4-bit mantissa."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 A-law: even bits inverted (0x55); a set sign bit means positive."""
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


EXPAND = {Encoding.MULAW: _mulaw_table(), Encoding.ALAW: _alaw_table()}
#: libsoxr's very high quality: its wider passband keeps more of 7-8 kHz, which the acoustic model
#: uses (the test set upsampled to 48 kHz and sent: word error rate 0.17 with VHQ on both sides, 0.28
#: with the default HQ; 0.12 at 16 kHz), at about 1 ms of CPU per second of audio.
QUALITY = "VHQ"


class Converter:
    """Converts whole frames of ``source`` to one 16 kHz int16 PCM stream per output channel."""

    def __init__(self, source: AudioFormat, *, multichannel: bool) -> None:
        self.source = source
        self.outputs = source.channels if multichannel else 1
        self._resamplers = (
            [self._new_resampler() for _ in range(self.outputs)]
            if source.sample_rate != SAMPLE_RATE
            else None
        )

    def _new_resampler(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(self.source.sample_rate, SAMPLE_RATE, 1, dtype="int16", quality=QUALITY)

    def convert(self, frames: bytes) -> list[bytes]:
        """``frames`` (whole frames of the source format) as PCM bytes, one entry per output channel."""
        return self._resample(self._channels(frames), last=False)

    def flush(self) -> list[bytes]:
        """What the resamplers still hold (Finalize, CloseStream); the next audio starts afresh."""
        empty = [np.zeros(0, dtype=np.int16)] * self.outputs
        tails = self._resample(empty, last=True)
        if self._resamplers is not None:
            self._resamplers = [self._new_resampler() for _ in range(self.outputs)]
        return tails

    def _channels(self, frames: bytes) -> list[np.ndarray]:
        source = self.source
        if source.encoding is Encoding.LINEAR16:
            samples = np.frombuffer(frames, dtype="<i2")
        else:
            samples = EXPAND[source.encoding][np.frombuffer(frames, dtype=np.uint8)]
        interleaved = samples.reshape(-1, source.channels)
        if self.outputs == 1 and source.channels > 1:
            return [interleaved.mean(axis=1).round().astype(np.int16)]
        return [np.ascontiguousarray(interleaved[:, channel]) for channel in range(self.outputs)]

    def _resample(self, channels: list[np.ndarray], *, last: bool) -> list[bytes]:
        if self._resamplers is None:
            return [channel.astype("<i2", copy=False).tobytes() for channel in channels]
        return [
            resampler.resample_chunk(channel, last=last).astype("<i2", copy=False).tobytes()
            for resampler, channel in zip(self._resamplers, channels, strict=True)
        ]
