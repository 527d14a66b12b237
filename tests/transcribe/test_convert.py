"""Audio conversion: G.711 expanded as the standard says, channels mixed or split, any rate to 16 kHz."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from model_server.models.transcribe.audio import AudioFormat
from model_server.models.transcribe.convert import EXPAND, Converter
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
