"""The recognizer in-process, with the real decoder: segmenting, finals, flushes, reuse of decoders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_server.models.transcribe import recognizer as recognizer_module
from model_server.models.transcribe.decoder import DecoderPool
from model_server.models.transcribe.recognizer import StreamRecognizer, Transcript
from tests.transcribe.conftest import DATA, SPEECH, read_pcm


@pytest.fixture(scope="module")
def pool() -> DecoderPool:
    decoder_pool = DecoderPool(max_idle=2)
    decoder_pool.load(warm=1)
    return decoder_pool


@pytest.fixture
def stream(pool: DecoderPool) -> Iterator[StreamRecognizer]:
    decoder = pool.acquire()
    recognizer = StreamRecognizer(decoder, interim_results=True, endpointing_ms=300)
    yield recognizer
    recognizer.close()
    pool.release(decoder)


def run(stream: StreamRecognizer, pcm: bytes, chunk_bytes: int = 3200) -> list[Transcript]:
    results: list[Transcript] = []
    for offset in range(0, len(pcm), chunk_bytes):
        results += stream.accept(pcm[offset : offset + chunk_bytes])
    return results + stream.finalize(from_finalize=False, closing=True)


def finals(results: list[Transcript]) -> list[Transcript]:
    return [result for result in results if result.is_final]


def test_sentence_gives_interims_then_one_final_with_timed_words(stream: StreamRecognizer) -> None:
    results = run(stream, read_pcm(SPEECH / "s04.wav"))
    assert [result.is_final for result in results][-1] is True
    assert any(not result.is_final for result in results)
    (final,) = finals(results)
    assert final.text == "turn on the lights in the kitchen"
    assert final.speech_final and not final.from_finalize
    starts = [word.start for word in final.words]
    assert starts == sorted(starts)
    assert final.start <= final.words[0].start and final.words[-1].end <= final.start + final.duration + 0.011
    assert 0.0 < final.confidence <= 1.0


def test_how_audio_is_cut_into_frames_does_not_change_the_result(pool: DecoderPool) -> None:
    pcm = read_pcm(SPEECH / "s02.wav")
    outcomes = []
    for chunk_bytes in (962, 31998):
        decoder = pool.acquire()
        stream = StreamRecognizer(decoder, interim_results=False, endpointing_ms=300)
        outcomes.append([(f.text, f.start, f.duration) for f in finals(run(stream, pcm, chunk_bytes))])
        pool.release(decoder)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0] == "the weather is nice today"


def test_silence_gives_no_results(stream: StreamRecognizer) -> None:
    assert run(stream, read_pcm(DATA / "silence.wav")) == []
    assert stream.audio_seconds == pytest.approx(3.0)


def test_finalize_without_speech_still_answers_once(stream: StreamRecognizer) -> None:
    stream.accept(read_pcm(DATA / "silence.wav")[:16000])
    (result,) = stream.finalize(from_finalize=True)
    assert result.from_finalize and result.is_final and result.words == ()
    assert result.start == pytest.approx(0.5)


def test_finalize_mid_speech_flushes_the_words_heard_so_far(stream: StreamRecognizer) -> None:
    pcm = read_pcm(SPEECH / "s01.wav")
    speech_only = pcm[: len(pcm) - 32000]  # drop the trailing second of silence: no end of speech seen
    heard: list[Transcript] = []
    for offset in range(0, len(speech_only), 3200):
        heard += stream.accept(speech_only[offset : offset + 3200])
    assert finals(heard) == []
    (flushed,) = stream.finalize(from_finalize=True)
    assert flushed.is_final and flushed.from_finalize and not flushed.speech_final
    assert flushed.text == "please call me back tomorrow morning"


def test_speech_longer_than_the_limit_is_finalized_without_speech_final(
    stream: StreamRecognizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recognizer_module, "MAX_UTTERANCE_SECONDS", 1.0)
    results = finals(run(stream, read_pcm(SPEECH / "s01.wav")))
    assert len(results) >= 2
    assert not results[0].speech_final and results[-1].speech_final
    assert results[1].start == pytest.approx(results[0].start + results[0].duration)


def test_second_pass_fixes_the_first_utterance(pool: DecoderPool) -> None:
    pcm = read_pcm(SPEECH / "s04.wav")
    texts = []
    for second_pass in (True, False):
        decoder = pool.acquire()
        stream = StreamRecognizer(decoder, interim_results=False, endpointing_ms=300, second_pass=second_pass)
        texts.append(finals(run(stream, pcm))[0].text)
        pool.release(decoder)
    with_second_pass, first_pass_only = texts
    assert with_second_pass == "turn on the lights in the kitchen"
    assert first_pass_only != with_second_pass


def test_a_long_first_utterance_gets_its_second_pass_while_it_goes_on(
    stream: StreamRecognizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recognizer_module, "SECOND_PASS_AFTER_SECONDS", 1.0)
    (final,) = finals(run(stream, read_pcm(SPEECH / "s04.wav")))
    assert final.text == "turn on the lights in the kitchen"
    assert final.words[0].start == pytest.approx(final.start, abs=0.5)


def test_a_reused_decoder_starts_from_the_initial_cepstral_mean(pool: DecoderPool) -> None:
    decoder = pool.acquire()
    initial = decoder.get_cmn()
    run(StreamRecognizer(decoder, interim_results=False, endpointing_ms=300), read_pcm(SPEECH / "s03.wav"))
    assert decoder.get_cmn() != initial  # the stream moved it: this is what release must undo
    pool.release(decoder)
    again = pool.acquire()
    assert again is decoder
    assert again.get_cmn() == initial
    pool.release(again)


def test_without_endpointing_only_the_flush_ends_the_utterance(pool: DecoderPool) -> None:
    decoder = pool.acquire()
    stream = StreamRecognizer(decoder, interim_results=False, endpointing_ms=None)
    pcm = read_pcm(DATA / "two-utterances.wav")
    heard: list[Transcript] = []
    for offset in range(0, len(pcm), 3200):
        heard += stream.accept(pcm[offset : offset + 3200])
    assert heard == []  # two sentences and a long pause, yet no end of speech
    (final,) = stream.finalize(from_finalize=True)
    pool.release(decoder)
    assert final.from_finalize
    assert "kitchen" in final.text and "weather" in final.text
