"""One stream's recognition: PCM in, interim and final transcripts out, with stream times.

Synchronous and not thread-safe: a session calls it only on the model's decoding thread, one call at a
time. Times are seconds from the first sample of the stream, counted in samples, so they do not depend
on how the client cut its frames or how fast it sent them.

The first utterance of a stream is decoded twice. pocketsphinx normalises features by a running
cepstral mean that starts from a generic prior and is updated when an utterance ends; until then the
prior can be far from this microphone's level, and the first utterance comes out much worse (word
error rate 0.36 instead of 0.12 on our test set). So the first utterance is decoded again with the
mean the first pass measured, when it ends or once it is ``SECOND_PASS_AFTER_SECONDS`` long (then the
rest of it is decoded live with the adapted mean). Later utterances start from that mean.

pocketsphinx weighs its prior as ``POCKETSPHINX_PRIOR_FRAMES`` frames of speech, so after one second
(100 frames) its mean has moved only a sixth of the way to this stream's. The second pass weighs the
prior as ``SECOND_PASS_PRIOR_FRAMES`` frames instead, which lets it run after one second of speech
rather than five: the re-decoding is shorter and is done long before a typical utterance ends, so a
final result does not wait for it.

Speech starts once the segmenter's 0.3 s start window is voiced, and the window's audio then has to be
decoded before there can be words: 25 to 190 ms of CPU at the start of an utterance (median 92 ms on the
12 test sentences), all of it on the critical path of the first interim. So the recognizer decodes
ahead: once the segmenter would start speech within ``SPECULATE_WITHIN_FRAMES`` frames if they all are
speech, the decoder starts an utterance at the sample where speech would then start and decodes each
frame as it comes. When speech starts there, only the last frame remains to decode; when the
prediction fails (a frame that is not speech), the utterance is abandoned and the cepstral mean it
moved is put back. Before a stream's first speech that undoing is exact (the decoder's feature
computation is rebuilt as new); later it leaves a trace in the noise estimate, which pocketsphinx
offers no way to put back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from model_server.models.transcribe.params import SAMPLE_RATE, SAMPLE_WIDTH
from model_server.models.transcribe.segmenter import SegmentStep, SpeechSegmenter

#: pocketsphinx computes 100 feature frames per second of audio.
DECODER_FRAMES_PER_SECOND = 100
#: Audio between two interim results of one utterance (only sent when the words changed). Until an
#: utterance's first interim with words, every call looks for one: a voice agent waits on it.
INTERIM_INTERVAL_SECONDS = 0.5
#: An utterance this long is finalized (is_final without speech_final) and decoding goes on in a new
#: one, so a speaker who never pauses still gets final results and the decoder's lattice stays small.
MAX_UTTERANCE_SECONDS = 20.0
#: A first utterance this long is decoded again without waiting for its end: that much speech gives a
#: good mean, and it bounds the work of the second pass (it runs on the thread all sessions share).
SECOND_PASS_AFTER_SECONDS = 1.0
#: The weight (in frames) of the prior in pocketsphinx's live cepstral mean (``CMN_WIN`` in its cmn.c;
#: measured: after 93 counted frames the mean is 0.843 of the way from any prior to the same value).
POCKETSPHINX_PRIOR_FRAMES = 500
#: The weight the second pass gives the prior instead (chosen on tests/data/eval, see the README).
SECOND_PASS_PRIOR_FRAMES = 100
#: Decode ahead once the segmenter would start speech within this many of its 30 ms frames (if each
#: were speech). It starts speech at 9 speech frames of 10, so this begins after 3 speech frames: a
#: click shorter than that costs nothing, and the 180 ms left is ample to catch up. 0: never.
SPECULATE_WITHIN_FRAMES = 6
#: Fillers in the decoder's segmentation that are not words: <s>, </s>, <sil>, [NOISE], [SPEECH].
NOT_A_WORD = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
ALTERNATE_PRONUNCIATION = re.compile(r"\(\d+\)$")


@dataclass(frozen=True)
class Word:
    """One recognised word with its stream times and posterior probability."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    """One result: the words of the current utterance so far (interim) or for good (final)."""

    start: float
    duration: float
    words: tuple[Word, ...]
    confidence: float
    is_final: bool
    speech_final: bool
    from_finalize: bool

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


@dataclass(frozen=True)
class SpeechStart:
    """Speech began (``vad_events``): the stream time of its first sample."""

    timestamp: float


class StreamRecognizer:
    """Feeds one stream's audio through a segmenter and a pocketsphinx decoder."""

    def __init__(
        self,
        decoder: Any,
        *,
        interim_results: bool,
        endpointing_ms: int | None,
        second_pass: bool = True,
        vad_events: bool = False,
    ) -> None:
        """``vad_events``: also return a ``SpeechStart`` where speech begins, before its results."""
        self._decoder = decoder
        self._vad_events = vad_events
        self._segmenter = SpeechSegmenter(end_window_ms=endpointing_ms)
        self._interim_results = interim_results
        self._frame_bytes = self._segmenter.frame_bytes
        self._pending = b""  # less than one segmenter frame
        self._samples = 0  # samples handed to the segmenter so far
        self._in_utterance = False
        self._utterance_start = 0  # sample index
        self._utterance_samples = 0  # samples decoded in the current utterance
        self._samples_at_interim = 0
        self._last_interim = ""
        self._interim_sent = False
        # The first utterance's audio, kept for its second pass; None once that has run (or if disabled).
        self._first_utterance_audio: list[bytes] | None = [] if second_pass else None
        self._first_utterance_samples = 0
        # Decoding ahead of the segmenter: the sample the open utterance starts at, and the cepstral
        # mean to put back if speech does not start there. None when not decoding ahead.
        self._speculative_start: int | None = None
        self._cmn_before_speculation = ""
        # No speech confirmed yet: the decoder's feature computation is still as the pool handed it over
        # (as new, see DecoderPool.release), so abandoning a prediction can rebuild it exactly.
        self._heard_speech = False

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received, including what still waits for a whole frame."""
        return (self._samples + len(self._pending) // SAMPLE_WIDTH) / SAMPLE_RATE

    def accept(self, pcm: bytes) -> list[Transcript | SpeechStart]:
        """Decode ``pcm`` (whole 16-bit samples); return the results it completed."""
        results: list[Transcript | SpeechStart] = []
        buffer = self._pending + pcm
        offset = 0
        while len(buffer) - offset >= self._frame_bytes:
            frame = buffer[offset : offset + self._frame_bytes]
            offset += self._frame_bytes
            step = self._segmenter.process(frame, self._samples)
            self._samples += len(frame) // SAMPLE_WIDTH
            results.extend(self._apply(step, from_finalize=False))
            self._decode_ahead()
        self._pending = buffer[offset:]
        interim = self._interim()
        if interim is not None:
            results.append(interim)
        return results

    def finalize(self, *, from_finalize: bool, closing: bool = False) -> list[Transcript | SpeechStart]:
        """Decode everything received so far and end the utterance (``Finalize``/``CloseStream``).

        With ``from_finalize`` there is always one result marked ``from_finalize`` (with no words
        when there was no speech), so a client can tell its flush is complete.
        """
        self._abandon_speculation()  # a flush starts speech where the segmenter says, not where predicted
        if self._pending and self._in_utterance:
            self._decode(self._pending)
        self._samples += len(self._pending) // SAMPLE_WIDTH
        self._pending = b""
        results = self._apply(self._segmenter.flush(), from_finalize=from_finalize, closing=closing)
        if from_finalize and not any(isinstance(r, Transcript) and r.from_finalize for r in results):
            now = self._samples / SAMPLE_RATE
            results.append(
                Transcript(
                    start=now,
                    duration=0.0,
                    words=(),
                    confidence=0.0,
                    is_final=True,
                    speech_final=closing,
                    from_finalize=True,
                )
            )
        return results

    def close(self) -> None:
        """End an utterance left open so the decoder can be reused; results are dropped."""
        self._abandon_speculation()
        if self._in_utterance:
            self._decoder.end_utt()
            self._in_utterance = False

    def _apply(
        self, step: SegmentStep, *, from_finalize: bool, closing: bool = False
    ) -> list[Transcript | SpeechStart]:
        results: list[Transcript | SpeechStart] = []
        speech_frames = step.speech
        if step.started_at is not None and not self._in_utterance:
            self._heard_speech = True
            if step.started_at == self._speculative_start:
                # Decoded ahead from this very sample: only the frames since remain.
                self._speculative_start = None
                self._in_utterance = True
                speech_frames = speech_frames[self._frames_decoded :]
            else:
                self._abandon_speculation()
                self._start_utterance(step.started_at)
            if self._vad_events:
                results.append(SpeechStart(round(step.started_at / SAMPLE_RATE, 3)))
        for speech in speech_frames:
            if self._in_utterance:
                self._decode(speech)
            if self._in_utterance and self._utterance_samples >= MAX_UTTERANCE_SECONDS * SAMPLE_RATE:
                results.append(self._end_utterance(speech_final=False, from_finalize=False))
                self._start_utterance(self._utterance_end())
        if step.ended and self._in_utterance:
            result = self._end_utterance(
                speech_final=not from_finalize or closing, from_finalize=from_finalize
            )
            # An utterance that came to no words is not worth a message, unless an interim showed
            # words that this final must replace, or the client asked for a flush.
            if result.words or self._interim_sent or from_finalize:
                results.append(result)
        return results

    def _decode_ahead(self) -> None:
        """Decode the frames speech is predicted to start with (see the module's docstring)."""
        if self._in_utterance or not SPECULATE_WITHIN_FRAMES:
            return
        likely = self._segmenter.likely_start(SPECULATE_WITHIN_FRAMES)
        if likely is None or likely[0] != self._speculative_start:
            self._abandon_speculation()
        if likely is None:
            return
        first_sample, frames = likely
        if self._speculative_start is None:
            self._cmn_before_speculation = self._decoder.get_cmn()
            self._start_utterance(first_sample)
            self._in_utterance = False  # not until the segmenter says so: no results meanwhile
            self._speculative_start = first_sample
        for frame in frames[self._frames_decoded :]:
            self._decode(frame)

    @property
    def _frames_decoded(self) -> int:
        """Segmenter frames the open utterance has decoded (all whole: speech comes in whole frames)."""
        return self._utterance_samples // self._segmenter.frame_samples

    def _abandon_speculation(self) -> None:
        """End the utterance decoded ahead and put back the cepstral mean from before it."""
        if self._speculative_start is None:
            return
        self._speculative_start = None
        self._decoder.end_utt()
        if not self._heard_speech:
            self._decoder.reinit_feat()  # also forgets the noise estimate the abandoned frames moved
        self._decoder.set_cmn(self._cmn_before_speculation)
        self._utterance_samples = 0
        if self._first_utterance_audio is not None:
            self._first_utterance_audio = []
            self._first_utterance_samples = 0

    def _start_utterance(self, first_sample: int) -> None:
        self._decoder.start_utt()
        self._in_utterance = True
        self._utterance_start = first_sample
        self._utterance_samples = 0
        self._samples_at_interim = 0
        self._last_interim = ""
        self._interim_sent = False

    def _decode(self, pcm: bytes) -> None:
        self._decoder.process_raw(pcm, False, False)
        self._utterance_samples += len(pcm) // SAMPLE_WIDTH
        if self._first_utterance_audio is not None:
            self._first_utterance_audio.append(pcm)
            self._first_utterance_samples += len(pcm) // SAMPLE_WIDTH
            if self._first_utterance_samples >= SECOND_PASS_AFTER_SECONDS * SAMPLE_RATE:
                self._second_pass()

    def _second_pass(self) -> None:
        """End the utterance, set the cepstral mean it measured, then decode its audio again."""
        audio, self._first_utterance_audio = self._first_utterance_audio or [], None
        prior = _cepstrum(self._decoder.get_cmn())
        frames = self._decoder.n_frames()
        blended = _cepstrum(self._decoder.get_cmn(True))  # pocketsphinx's own blend with the prior
        self._decoder.end_utt()
        if frames > 0:
            self._decoder.set_cmn(_reweighted_mean(prior, blended, frames))
        self._decoder.start_utt()
        for pcm in audio:  # in the pieces it came in, so no one call holds the GIL for long
            self._decoder.process_raw(pcm, False, False)

    def _utterance_end(self) -> int:
        return self._utterance_start + self._utterance_samples

    def _end_utterance(self, *, speech_final: bool, from_finalize: bool) -> Transcript:
        if self._first_utterance_audio:
            self._second_pass()
        self._decoder.end_utt()
        self._in_utterance = False
        words = self._words(final=True)
        confidence = sum(word.confidence for word in words) / len(words) if words else 0.0
        return Transcript(
            start=self._utterance_start / SAMPLE_RATE,
            duration=self._utterance_samples / SAMPLE_RATE,
            words=words,
            confidence=confidence,
            is_final=True,
            speech_final=speech_final,
            from_finalize=from_finalize,
        )

    def _interim(self) -> Transcript | None:
        if not (self._interim_results and self._in_utterance):
            return None
        since_last = self._utterance_samples - self._samples_at_interim
        if self._interim_sent and since_last < INTERIM_INTERVAL_SECONDS * SAMPLE_RATE:
            return None
        self._samples_at_interim = self._utterance_samples
        words = self._words(final=False)
        text = " ".join(word.text for word in words)
        if not text or text == self._last_interim:
            return None
        self._last_interim = text
        self._interim_sent = True
        return Transcript(
            start=self._utterance_start / SAMPLE_RATE,
            duration=self._utterance_samples / SAMPLE_RATE,
            words=words,
            confidence=0.0,
            is_final=False,
            speech_final=False,
            from_finalize=False,
        )

    def _words(self, *, final: bool) -> tuple[Word, ...]:
        """The current best path as words; posteriors exist only once the utterance has ended."""
        start = self._utterance_start / SAMPLE_RATE
        words = []
        for segment in self._decoder.seg() or ():  # None before the search has a hypothesis
            if NOT_A_WORD.match(segment.word):
                continue
            words.append(
                Word(
                    text=ALTERNATE_PRONUNCIATION.sub("", segment.word),
                    start=round(start + segment.start_frame / DECODER_FRAMES_PER_SECOND, 3),
                    end=round(start + (segment.end_frame + 1) / DECODER_FRAMES_PER_SECOND, 3),
                    confidence=min(1.0, max(0.0, float(segment.prob))) if final else 0.0,
                )
            )
        return tuple(words)


def _cepstrum(text: str) -> list[float]:
    return [float(value) for value in text.split(",")]


def _reweighted_mean(prior: list[float], blended: list[float], frames: int) -> str:
    """The mean of ``frames`` frames blended with ``prior`` as ``SECOND_PASS_PRIOR_FRAMES`` frames, from
    pocketsphinx's blend of the same frames with the prior as ``POCKETSPHINX_PRIOR_FRAMES`` frames."""
    own, weight = POCKETSPHINX_PRIOR_FRAMES, SECOND_PASS_PRIOR_FRAMES
    means = [
        ((own + frames) * mixed - own * start) / frames for start, mixed in zip(prior, blended, strict=True)
    ]
    return ",".join(
        f"{(weight * start + frames * mean) / (weight + frames):.6g}"
        for start, mean in zip(prior, means, strict=True)
    )
