"""The recognizer in-process, with the real decoder: segmenting, finals, flushes, reuse of decoders."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from model_server.models.transcribe import recognizer as recognizer_module
from model_server.models.transcribe.decoder import DecoderPool
from model_server.models.transcribe.recognizer import SpeechStart, StreamRecognizer, Transcript
from model_server.models.transcribe.segmenter import SpeechSegmenter
from tests.transcribe.conftest import DATA, SPEECH, read_pcm

EVAL = DATA / "eval"


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


def run(stream: StreamRecognizer, pcm: bytes, chunk_bytes: int = 3200) -> list[Transcript | SpeechStart]:
    results: list[Transcript | SpeechStart] = []
    for offset in range(0, len(pcm), chunk_bytes):
        results += stream.accept(pcm[offset : offset + chunk_bytes])
    return results + stream.finalize(from_finalize=False, closing=True)


def finals(results: list[Transcript | SpeechStart]) -> list[Transcript]:
    return [result for result in results if isinstance(result, Transcript) and result.is_final]


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


def test_first_interim_comes_as_soon_as_it_has_words_then_at_the_interval(stream: StreamRecognizer) -> None:
    # 20 ms frames, as a live client sends them: the first interim must not wait for a whole interval.
    results = run(stream, read_pcm(SPEECH / "s04.wav"), chunk_bytes=640)
    interims = [result for result in results if not result.is_final]
    assert interims and interims[0].words
    # Speech starts once the segmenter's start window (0.3 s) is voiced: words within 0.1 s after it.
    assert interims[0].duration <= 0.4, [result.duration for result in interims]
    gaps = [later.duration - earlier.duration for earlier, later in itertools.pairwise(interims)]
    assert all(gap >= recognizer_module.INTERIM_INTERVAL_SECONDS - 1e-9 for gap in gaps), gaps


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


class CountingDecoder:
    """A decoder that counts the bytes of audio it is given to decode."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder
        self.decoded = 0

    def process_raw(self, data: bytes, no_search: bool, full_utt: bool) -> Any:
        self.decoded += len(data)
        return self._decoder.process_raw(data, no_search, full_utt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decoder, name)


def test_a_first_utterance_over_a_second_long_is_not_decoded_again_when_it_ends(pool: DecoderPool) -> None:
    decoder = pool.acquire()
    counting = CountingDecoder(decoder)
    stream = StreamRecognizer(counting, interim_results=False, endpointing_ms=None)  # ends at CloseStream
    speech_only = read_pcm(SPEECH / "s04.wav")[:-32000]  # without the clip's trailing second of silence
    for offset in range(0, len(speech_only), 640):
        assert stream.accept(speech_only[offset : offset + 640]) == []
    counting.decoded = 0
    (final,) = stream.finalize(from_finalize=False, closing=True)
    pool.release(decoder)
    assert final.text == "turn on the lights in the kitchen"
    # Only what had not filled a segmenter frame yet: the second pass ran while the speech went on.
    assert counting.decoded < 960, counting.decoded


def test_the_second_pass_weighs_the_prior_as_fewer_frames_than_pocketsphinx() -> None:
    # 100 frames of mean 60 after a prior of 40: pocketsphinx's blend (prior as 500 frames) is 43.33;
    # as SECOND_PASS_PRIOR_FRAMES (100) frames of prior, the same frames give 50.
    blended = (500 * 40.0 + 100 * 60.0) / 600
    reweighted = recognizer_module._reweighted_mean([40.0, 0.0], [blended, 0.0], 100)
    expected = [(100 * 40 + 100 * 60) / 200, 0.0]
    assert [float(value) for value in reweighted.split(",")] == pytest.approx(expected)


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


def test_a_reused_decoder_decodes_exactly_as_a_new_one(fresh_pool: DecoderPool) -> None:
    # After a stream in pink noise, resetting the cepstral mean alone left this clean clip with other
    # confidences than on a new decoder.
    clip = read_pcm(EVAL / "s1-en-gb-155.wav")
    as_new = live_results(fresh_pool, clip)
    reused = DecoderPool(max_idle=1)
    reused.load(warm=1)
    decoder = reused.acquire()
    live_results_on(decoder, read_pcm(EVAL / "s1-en-gb-155-pink20.wav"))
    reused.release(decoder)
    again = reused.acquire()
    assert again is decoder
    assert live_results_on(again, clip) == as_new


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


@pytest.fixture(scope="module")
def fresh_pool() -> DecoderPool:
    """A new decoder on every acquire: the reference a reused decoder is compared with, and results
    compared for equality that must not rest on the pool's reset."""
    decoder_pool = DecoderPool(max_idle=0)
    decoder_pool.load(warm=1)
    return decoder_pool


def live_results(pool: DecoderPool, pcm: bytes) -> list[Transcript | SpeechStart]:
    """Everything a live stream (20 ms frames, interim results, speech events) gets for ``pcm``."""
    decoder = pool.acquire()
    results = live_results_on(decoder, pcm)
    pool.release(decoder)
    return results


def live_results_on(decoder: Any, pcm: bytes) -> list[Transcript | SpeechStart]:
    stream = StreamRecognizer(decoder, interim_results=True, endpointing_ms=300, vad_events=True)
    results = run(stream, pcm, chunk_bytes=640)
    stream.close()
    return results


def test_segmenter_predicts_the_start_with_the_frames_it_then_starts_with() -> None:
    segmenter = SpeechSegmenter(end_window_ms=300)
    pcm = read_pcm(SPEECH / "s04.wav")
    frame = segmenter.frame_bytes
    predictions = []
    for offset in range(0, len(pcm) - frame + 1, frame):
        step = segmenter.process(pcm[offset : offset + frame], offset // 2)
        if step.started_at is not None:
            break
        predictions.append(segmenter.likely_start(recognizer_module.SPECULATE_WITHIN_FRAMES))
    else:
        pytest.fail("no speech start in s04.wav")
    assert predictions[-1] == (step.started_at, step.speech[:-1])
    # Predicted only from a few speech frames on, not all through the half second of silence before.
    silent = len(predictions) - recognizer_module.SPECULATE_WITHIN_FRAMES
    assert predictions[:silent] == [None] * silent


def test_when_speech_starts_only_its_last_frame_is_left_to_decode(fresh_pool: DecoderPool) -> None:
    counting = CountingDecoder(fresh_pool.acquire())
    stream = StreamRecognizer(counting, interim_results=True, endpointing_ms=300, vad_events=True)
    pcm = read_pcm(SPEECH / "s08.wav")  # its start window took 190 ms to decode at once
    for offset in range(0, len(pcm), 640):
        decoded_before = counting.decoded
        results = stream.accept(pcm[offset : offset + 640])
        if any(isinstance(result, SpeechStart) for result in results):
            break
    else:
        pytest.fail("no speech start in s08.wav")
    stream.close()
    # The start window's other nine frames were decoded while it filled.
    assert counting.decoded - decoded_before <= SpeechSegmenter(end_window_ms=None).frame_bytes
    assert counting.decoded >= 10 * SpeechSegmenter(end_window_ms=None).frame_bytes
    # The first interim, from the start window's 0.3 s: the sentence's first word ("can you send me ...").
    assert [result.text for result in results if isinstance(result, Transcript)] == ["can"]


class ResetCountingDecoder(CountingDecoder):
    """Also counts rebuilds of the feature computation (an abandoned prediction before any speech)."""

    rebuilt = 0

    def reinit_feat(self) -> Any:
        self.rebuilt += 1
        return self._decoder.reinit_feat()


def test_decoding_ahead_of_the_start_changes_no_result(
    fresh_pool: DecoderPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clean sentence, and one in noise whose speech is predicted once before it starts (and the
    # prediction abandoned) and again, rightly, when it does.
    for clip in (SPEECH / "s04.wav", EVAL / "s2-en-gb-165.wav"):
        pcm = read_pcm(clip)
        counting = ResetCountingDecoder(fresh_pool.acquire())
        ahead = live_results_on(counting, pcm)
        with monkeypatch.context() as patch:
            patch.setattr(recognizer_module, "SPECULATE_WITHIN_FRAMES", 0)
            waiting = live_results(fresh_pool, pcm)
        assert ahead == waiting, clip
        assert any(isinstance(result, Transcript) and result.is_final for result in ahead)
        assert counting.rebuilt == (clip.parent == EVAL), clip.name


def test_a_false_start_is_abandoned_and_the_cepstral_mean_put_back(fresh_pool: DecoderPool) -> None:
    decoder = fresh_pool.acquire()
    counting = CountingDecoder(decoder)
    stream = StreamRecognizer(counting, interim_results=True, endpointing_ms=300, vad_events=True)
    initial = decoder.get_cmn()
    pcm = read_pcm(SPEECH / "s04.wav")
    # The clip's leading silence and its voice's first 120 ms (s04's voice starts 0.553 s in), then a
    # second of silence: the segmenter hears 8 speech frames where speech starts with 9.
    burst = pcm[: int((0.553 + 0.12) * 16000) * 2] + bytes(32000)
    results = []
    for offset in range(0, len(burst), 640):
        results += stream.accept(burst[offset : offset + 640])
    assert counting.decoded > 0  # it did decode ahead
    assert results == []
    assert decoder.get_cmn() == initial
    # The same stream then hears the sentence as usual.
    results = run(stream, pcm, chunk_bytes=640)
    stream.close()
    assert [result.text for result in finals(results)] == ["turn on the lights in the kitchen"]
