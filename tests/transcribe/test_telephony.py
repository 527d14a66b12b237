"""Telephone (G.711 mu-law, 8 kHz) and browser (linear16, 48 kHz) audio through the real server.

The evaluation set of test_listen (tests/data/speech: 12 sentences, 81 words, 16 kHz) converted by
tests/data/make_telephony.sh, streamed in 20 ms frames as a Twilio media stream or a WebRTC track
delivers them, with ``encoding``/``sample_rate`` saying what they are; the server resamples to 16 kHz.

Word error rates measured through this path (the README has them): 16 kHz 0.123; 48 kHz 0.21;
8 kHz mu-law 0.89. The 48 kHz files hold the same 16 kHz speech (resampled back, 51 dB SNR against
the original), yet the decoder is sensitive enough that this alone moves the rate from 0.12 to
0.16-0.21: each is a handful of the 81 words. The 8 kHz files have lost everything above 4 kHz, and
pocketsphinx's only US English acoustic model was trained on 16 kHz audio whose features reach 6.8 kHz:
the top mel bands are empty and most words go wrong. Thresholds: 0.30 at 48 kHz, as at 16 kHz; 0.95
at 8 kHz, which only says that words still come through. The twins below show the check failing
when the audio is declared wrongly (A-law for mu-law, or 48 kHz as 16 kHz: about 1.0, no right words).
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

from tests.support.processes import RunningProcess
from tests.transcribe.conftest import DATA, Received, evaluation_set, listen_url, stream_clip
from tests.transcribe.wer import word_error_rate

TELEPHONY = DATA / "telephony"
MULAW_8K = "encoding=mulaw&sample_rate=8000"
LINEAR16_48K = "encoding=linear16&sample_rate=48000"
MULAW_FRAME_BYTES = 160  # 20 ms at 8 kHz, one byte a sample: one Twilio media message
LINEAR16_48K_FRAME_BYTES = 1920  # 20 ms at 48 kHz, two bytes a sample
MAX_WORD_ERROR_RATE_8K = 0.95
MAX_WORD_ERROR_RATE_48K = 0.30


def mulaw_8k(clip: Path) -> bytes:
    """Raw mu-law bytes, as a telephone media stream carries them (no header)."""
    return (TELEPHONY / "mulaw-8k" / clip.name).with_suffix(".ulaw").read_bytes()


def linear16_48k(clip: Path) -> bytes:
    with wave.open(str(TELEPHONY / "linear16-48k" / clip.name), "rb") as source:
        assert (source.getframerate(), source.getnchannels(), source.getsampwidth()) == (48000, 1, 2)
        return source.readframes(source.getnframes())


async def transcribe_all(url: str, clips: list[bytes], frame_bytes: int) -> list[Received]:
    # One after another, so sessions reuse the server's idle decoders instead of making new ones.
    return [await stream_clip(url, audio, chunk_bytes=frame_bytes) for audio in clips]


def corpus_word_error_rate(
    server: RunningProcess, query: str, audio: list[bytes], texts: list[str], frame_bytes: int
) -> tuple[float, list[tuple[str, str]]]:
    received = asyncio.run(transcribe_all(listen_url(server, query), audio, frame_bytes))
    pairs = list(zip(texts, [outcome.final_text() for outcome in received], strict=True))
    return word_error_rate(pairs), pairs


def test_telephone_audio_mulaw_8k(listen_server: RunningProcess) -> None:
    clips, texts = zip(*evaluation_set(), strict=True)
    rate, pairs = corpus_word_error_rate(
        listen_server, MULAW_8K, [mulaw_8k(clip) for clip in clips], list(texts), MULAW_FRAME_BYTES
    )
    assert rate <= MAX_WORD_ERROR_RATE_8K, (rate, pairs)


def test_browser_audio_linear16_48k(listen_server: RunningProcess) -> None:
    clips, texts = zip(*evaluation_set(), strict=True)
    rate, pairs = corpus_word_error_rate(
        listen_server,
        LINEAR16_48K,
        [linear16_48k(clip) for clip in clips],
        list(texts),
        LINEAR16_48K_FRAME_BYTES,
    )
    assert rate <= MAX_WORD_ERROR_RATE_48K, (rate, pairs)


@pytest.mark.parametrize(
    ("query", "read", "frame_bytes", "threshold"),
    [
        # A-law expands the same bytes to different samples: noise, if the encoding is honoured.
        ("encoding=alaw&sample_rate=8000", mulaw_8k, MULAW_FRAME_BYTES, MAX_WORD_ERROR_RATE_8K),
        # 48 kHz samples read as 16 kHz: three times too slow, if the rate is honoured.
        (
            "encoding=linear16&sample_rate=16000",
            linear16_48k,
            LINEAR16_48K_FRAME_BYTES,
            MAX_WORD_ERROR_RATE_48K,
        ),
    ],
    ids=["mulaw-declared-alaw", "48k-declared-16k"],
)
def test_word_error_rate_check_catches_audio_declared_wrongly(
    listen_server: RunningProcess, query: str, read: object, frame_bytes: int, threshold: float
) -> None:
    clips, texts = zip(*evaluation_set()[1:2], strict=True)  # one short sentence: s02, 3.3 s
    audio = [read(clip) for clip in clips]  # type: ignore[operator]
    rate, pairs = corpus_word_error_rate(listen_server, query, audio, list(texts), frame_bytes)
    assert rate > threshold, (rate, pairs)
