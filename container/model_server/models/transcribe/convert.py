"""Any accepted raw audio to what the acoustic model decodes: 16 kHz mono 16-bit PCM per channel.

G.711 (mu-law, A-law) is expanded to 16-bit samples through the standard's 256-entry tables;
interleaved channels are mixed down (their mean) or split, one stream per channel; any rate is
resampled with libsoxr (``soxr``), streaming, so a frame boundary never clicks.

Audio declared below 16 kHz (telephone audio: 8 kHz) has nothing above half its rate, where the
acoustic model (trained on 16 kHz audio, filters up to 6.8 kHz) always saw some energy: its top bands'
log energies fall far below anything it learned and most words go wrong. A low, fixed-seed noise is
added over exactly that empty band (``BandFill``), which brings those bands back into the range the
model knows without touching the speech band. Audio at 16 kHz or more is never changed.
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
#: RMS (int16) of the noise filling the band a narrow-band source lacks, about -58 dBFS. On the 12
#: mu-law 8 kHz clips of tests/data/telephony, decoded offline in 20 ms frames, word error rate over
#: three noise seeds: 0.79 without noise; 0.64-0.68 at RMS 25, 0.58-0.63 at 40, 0.62-0.64 at 60; white
#: noise over the whole band instead, 0.67. (Telling the model its filters end at 3.9 kHz, the other
#: way to skip the empty band, gives 0.99: its means were trained with them up to 6.8 kHz.)
FILL_RMS = 40.0
#: The noise is the same for every stream, so a stream's transcript does not change from run to run.
FILL_SEED = 16000


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
        self._fills = (
            [BandFill(source.sample_rate) for _ in range(self.outputs)]
            if source.sample_rate < SAMPLE_RATE
            else None
        )

    def _new_resampler(self) -> soxr.ResampleStream:
        # In float: libsoxr dithers integer output with a random seed, which made the same audio come
        # out differently from one stream to the next.
        return soxr.ResampleStream(self.source.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality=QUALITY)

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
        resampled = [
            resampler.resample_chunk(channel.astype(np.float32), last=last)
            for resampler, channel in zip(self._resamplers, channels, strict=True)
        ]
        if self._fills is not None:
            resampled = [fill.add(channel) for fill, channel in zip(self._fills, resampled, strict=True)]
        return [to_int16(channel).tobytes() for channel in resampled]


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples rounded and clipped to little-endian 16-bit PCM."""
    return np.clip(np.round(samples), -32768, 32767).astype("<i2")


class BandFill:
    """Adds ``FILL_RMS`` noise between half of ``source_rate`` and 8 kHz to 16 kHz samples, seamlessly
    across calls.

    White noise at ``SAMPLE_RATE - source_rate`` Hz, upsampled by libsoxr to 16 kHz, fills the band
    from 0 to 8 kHz minus half the source rate; multiplying it by (-1)^n (n counted over the stream)
    turns each frequency f into 8 kHz - f, so it fills the band from half the source rate to 8 kHz.
    """

    def __init__(self, source_rate: int) -> None:
        self._noise_rate = SAMPLE_RATE - source_rate
        self._block = max(1, self._noise_rate // 100)  # 10 ms of noise
        self._random = np.random.default_rng(FILL_SEED)
        self._upsampler = soxr.ResampleStream(
            self._noise_rate, SAMPLE_RATE, 1, dtype="float32", quality=QUALITY
        )
        self._held = np.zeros(0, dtype=np.float32)  # upsampled noise not used yet
        self._odd = False  # whether the next sample's index in the stream is odd

    def add(self, samples: np.ndarray) -> np.ndarray:
        """``samples`` (float, 16 kHz) with the noise added."""
        count = len(samples)
        noise = self._noise(count)
        if self._odd:
            noise[0::2] *= -1
        else:
            noise[1::2] *= -1
        self._odd ^= count % 2 == 1
        filled: np.ndarray = samples + noise
        return filled

    def _noise(self, count: int) -> np.ndarray:
        parts, have = [self._held], len(self._held)
        while have < count:
            # Drawn in fixed blocks, so the noise does not depend on how the client cut its frames.
            white = self._random.standard_normal(self._block).astype(np.float32) * FILL_RMS
            part = self._upsampler.resample_chunk(white)
            parts.append(part)
            have += len(part)
        noise = np.concatenate(parts)
        self._held = noise[count:]
        return noise[:count].copy()
