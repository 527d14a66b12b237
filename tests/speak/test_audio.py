"""G.711 and resampling, against the reference encoder and by the numbers."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # the reference G.711 coder (Sun's g711.c): deprecated, still in 3.12
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

import numpy as np
import pytest

from model_server.models.speak.audio import ALAW_TABLE, ULAW_TABLE, Encoding, SentenceAudio, encode

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)


@pytest.mark.parametrize(
    ("table", "reference"), [(ULAW_TABLE, audioop.lin2ulaw), (ALAW_TABLE, audioop.lin2alaw)]
)
def test_g711_tables_match_the_reference_for_every_sample(table: np.ndarray, reference: object) -> None:
    assert callable(reference)
    assert bytes(table) == reference(EVERY_SAMPLE.tobytes(), 2)


def test_the_two_laws_differ() -> None:
    """The twin: the comparison above would catch a table of the other law."""
    assert bytes(ULAW_TABLE) != audioop.lin2alaw(EVERY_SAMPLE.tobytes(), 2)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_encode_indexes_every_sample_right(encoding: Encoding) -> None:
    encoded = encode(EVERY_SAMPLE, encoding)
    if encoding is Encoding.LINEAR16:
        assert encoded == EVERY_SAMPLE.astype("<i2").tobytes()
    else:
        reference = audioop.lin2ulaw if encoding is Encoding.MULAW else audioop.lin2alaw
        assert encoded == reference(EVERY_SAMPLE.tobytes(), 2)


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 32000, 48000])
def test_a_sentence_resampled_in_chunks_keeps_its_length_and_pitch(rate: int) -> None:
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.int16)  # 1 s at 22.05 kHz
    audio = SentenceAudio(input_rate=22050, output_rate=rate, encoding=Encoding.LINEAR16)
    out = b"".join(audio.push(tone[i : i + 2205].tobytes()) for i in range(0, len(tone), 2205))
    samples = np.frombuffer(out + audio.finish(), dtype="<i2")

    assert len(samples) == rate
    spectrum = np.abs(np.fft.rfft(samples[rate // 10 : -rate // 10]))
    peak_hz = np.argmax(spectrum) * rate / (len(samples) - 2 * (rate // 10))
    assert peak_hz == pytest.approx(440, abs=5)
