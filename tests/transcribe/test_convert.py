"""Audio conversion: G.711 expanded as the standard says, channels mixed or split, any rate to 16 kHz."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from model_server.models.transcribe.audio import AudioFormat
from model_server.models.transcribe.convert import EXPAND, FILL_RMS, Converter
from model_server.models.transcribe.params import Encoding

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # Python 3.12's C implementation of G.711: an independent reference


@pytest.mark.parametrize(
    ("encoding", "reference"), [(Encoding.MULAW, audioop.ulaw2lin), (Encoding.ALAW, audioop.alaw2lin)]
)
def test_g711_tables_match_the_reference_decoder(encoding: Encoding, reference: object) -> None:
    every_code = bytes(range(256))
    expected = np.frombuffer(reference(every_code, 2), dtype="<i2")  # type: ignore[operator]
    assert np.array_equal(EXPAND[encoding], expected)


def tone(rate: int, seconds: float, frequency: float = 440.0) -> np.ndarray:
    times = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * frequency * times)).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_any_rate_comes_out_at_16_khz_with_every_sample_accounted_for(rate: int) -> None:
    converter = Converter(AudioFormat(Encoding.LINEAR16, rate, 1), multichannel=False)
    source = tone(rate, 1.0).tobytes()
    out = b"".join(
        converter.convert(source[offset : offset + 640])[0] for offset in range(0, len(source), 640)
    )
    out += converter.flush()[0]
    samples = np.frombuffer(out, dtype="<i2")
    assert abs(len(samples) - 16000) <= 2
    # The tone survives: its spectral peak stays at 440 Hz.
    spectrum = np.abs(np.fft.rfft(samples[:16000].astype(float)))
    assert abs(np.argmax(spectrum) * 16000 / len(samples[:16000]) - 440) < 2


def test_channels_are_split_or_mixed_down() -> None:
    left, right = np.full(160, 1000, dtype=np.int16), np.full(160, -3000, dtype=np.int16)
    interleaved = np.stack([left, right], axis=1).tobytes()
    split = Converter(AudioFormat(Encoding.LINEAR16, 16000, 2), multichannel=True).convert(interleaved)
    assert [np.frombuffer(part, dtype="<i2")[0] for part in split] == [1000, -3000]
    (mixed,) = Converter(AudioFormat(Encoding.LINEAR16, 16000, 2), multichannel=False).convert(interleaved)
    assert set(np.frombuffer(mixed, dtype="<i2")) == {-1000}


def converted(rate: int, audio: np.ndarray, chunk_samples: int = 321) -> np.ndarray:
    """``audio`` at ``rate`` through a converter in odd-sized pieces, tail included, at 16 kHz."""
    converter = Converter(AudioFormat(Encoding.LINEAR16, rate, 1), multichannel=False)
    source = audio.astype("<i2").tobytes()
    step = 2 * chunk_samples
    out = b"".join(
        converter.convert(source[offset : offset + step])[0] for offset in range(0, len(source), step)
    )
    return np.frombuffer(out + converter.flush()[0], dtype="<i2")


def band_shares(samples: np.ndarray, edge: float) -> tuple[float, float]:
    """The shares of ``samples``' energy below and above ``edge`` Hz (100 Hz either side left out)."""
    power = np.abs(np.fft.rfft(samples.astype(float))) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / 16000)
    total = power.sum()
    return power[frequencies < edge - 100].sum() / total, power[frequencies > edge + 100].sum() / total


@pytest.mark.parametrize("rate", [8000, 11025])
def test_narrow_band_audio_gets_low_noise_only_over_the_band_it_lacks(rate: int) -> None:
    filled = converted(rate, np.zeros(2 * rate, dtype=np.int16))
    assert abs(filled.std() - FILL_RMS) < 0.1 * FILL_RMS
    below, above = band_shares(filled, rate / 2)
    # Seamless across pieces of any size: a slip of the (-1)^n sign would fold noise into the speech band.
    assert below < 0.001 and above > 0.99, (below, above)
    # The same on every run and every stream, so transcripts do not vary with it.
    assert np.array_equal(filled, converted(rate, np.zeros(2 * rate, dtype=np.int16), chunk_samples=160))


def test_band_check_catches_noise_over_the_whole_band() -> None:
    white = np.random.default_rng(0).normal(0, FILL_RMS, 32000).round().astype(np.int16)
    below, _ = band_shares(white, 4000)
    assert below > 0.001


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
def test_audio_at_16_khz_or_more_gets_no_noise(rate: int) -> None:
    assert not converted(rate, np.zeros(rate, dtype=np.int16)).any()


@pytest.mark.parametrize("rate", [8000, 48000])
def test_the_same_audio_converts_to_the_same_samples_every_time(rate: int) -> None:
    # libsoxr dithers integer output with a random seed; resampling in float and rounding here does not.
    first = converted(rate, tone(rate, 0.5))
    assert np.array_equal(first, converted(rate, tone(rate, 0.5)))
