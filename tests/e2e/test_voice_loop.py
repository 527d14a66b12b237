"""A voice agent's whole speech path on one endpoint: text to v1/speak, that audio to v1/listen, the
words back, through the local SageMaker endpoint with the real SDK. The word error rate measures both
models (bench/bench_speak.py prints it over the whole evaluation set for four voices)."""

from __future__ import annotations

import asyncio

import pytest

from bidistream.client import StreamTarget
from tests.e2e.conftest import ENDPOINT_NAME, REGION
from tests.support.processes import RunningProcess
from tests.support.voice_loop import listen, speak
from tests.transcribe.conftest import evaluation_set
from tests.transcribe.wer import word_error_rate

#: The best-recognised voice (round-trip WER 0.35 over the 12 sentences in bench_speak; 0.35-0.52 by
#: voice). The bound is loose for espeak-ng's random voicing noise on three sentences, and still
#: fails for audio that is not the text's speech (WER near 1).
VOICE = "aura-2-zeus-en"
MAX_WORD_ERROR_RATE = 0.6
#: A quarter of the evaluation set keeps the test short on two busy cores; the benchmark runs all of it.
SENTENCES = [text for _, text in evaluation_set()][:3]
#: Each listen decodes on the container's one decoding thread, which the whole machine shares.
pytestmark = pytest.mark.timeout(300)


def target(endpoint: RunningProcess) -> StreamTarget:
    return StreamTarget(
        endpoint_name=ENDPOINT_NAME,
        region=REGION,
        endpoint_uri=str(endpoint.extra["uri"]),
        ca_file=str(endpoint.extra["ca_file"]),
    )


@pytest.fixture
def spoken(container_endpoint: RunningProcess) -> list[bytes]:
    """The sentences as v1/speak says them (16 kHz linear16), through the endpoint (fast: no cache)."""

    async def run() -> list[bytes]:
        return [await speak(target(container_endpoint), text, voice=VOICE) for text in SENTENCES]

    return asyncio.run(run())


def test_text_spoken_then_transcribed_comes_back_as_the_same_words(
    container_endpoint: RunningProcess, spoken: list[bytes]
) -> None:
    async def run() -> list[str]:
        return [await listen(target(container_endpoint), audio) for audio in spoken]

    heard = asyncio.run(run())

    pairs = list(zip(SENTENCES, heard, strict=True))
    assert word_error_rate(pairs) <= MAX_WORD_ERROR_RATE, pairs


def test_audio_that_is_not_the_texts_speech_fails_the_loop(
    container_endpoint: RunningProcess, spoken: list[bytes]
) -> None:
    """The twin: the bound above catches speech that does not say the text (here, played backwards)."""

    async def run() -> list[str]:
        return [await listen(target(container_endpoint), reverse_samples(audio)) for audio in spoken[:2]]

    heard = asyncio.run(run())

    assert word_error_rate(zip(SENTENCES[:2], heard, strict=True)) > MAX_WORD_ERROR_RATE, heard


def reverse_samples(audio: bytes) -> bytes:
    samples = [audio[i : i + 2] for i in range(0, len(audio) - 1, 2)]
    return b"".join(reversed(samples))
