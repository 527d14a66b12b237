"""Where speech starts and ends: pocketsphinx's WebRTC voice activity detector over a sliding window.

pocketsphinx's own ``Endpointer`` uses one window for both edges and holds every speech frame back by
the whole window; this segmenter uses the same ``Vad`` with two windows (a start window, and an end
window of ``endpointing`` milliseconds) and passes speech frames through at once, so interim results
are not delayed by the end window. It also flushes on demand (``Finalize``), which the ``Endpointer``
can only do at the end of a stream.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from pocketsphinx import Vad

from model_server.models.transcribe.params import SAMPLE_RATE

#: Speech starts when this share of the start window is speech, and ends when this share of the end
#: window is not (pocketsphinx's Endpointer default).
RATIO = 0.9
START_WINDOW_SECONDS = 0.3
VAD_MODE = Vad.LOOSE


@dataclass
class SegmentStep:
    """What one frame (or a flush) did: speech audio to decode, and the edges it crossed."""

    speech: list[bytes] = field(default_factory=list)
    #: Sample index (stream time) of the first speech sample when speech started in this step.
    started_at: int | None = None
    ended: bool = False


class SpeechSegmenter:
    """Splits fixed-size frames of 16 kHz PCM into speech and non-speech."""

    def __init__(self, *, end_window_ms: int | None) -> None:
        self._vad = Vad(VAD_MODE, SAMPLE_RATE)
        self.frame_bytes: int = self._vad.frame_bytes
        self.frame_samples: int = self.frame_bytes // 2
        start_frames = max(1, round(START_WINDOW_SECONDS * SAMPLE_RATE / self.frame_samples))
        self._start_window: deque[tuple[bytes, bool, int]] = deque(maxlen=start_frames)
        self._end_window: deque[bool] | None = None
        if end_window_ms is not None:
            frame_ms = 1000 * self.frame_samples / SAMPLE_RATE
            self._end_window = deque(maxlen=max(1, math.ceil(end_window_ms / frame_ms)))
        self.in_speech = False

    def process(self, frame: bytes, first_sample: int) -> SegmentStep:
        """Classify one frame of exactly ``frame_bytes`` that starts at sample ``first_sample``."""
        is_speech = bool(self._vad.is_speech(frame))
        step = SegmentStep()
        if not self.in_speech:
            self._start_window.append((frame, is_speech, first_sample))
            window = self._start_window
            voiced = sum(1 for _, speech, _ in window if speech)
            if len(window) == window.maxlen and voiced >= RATIO * len(window):
                self.in_speech = True
                step.started_at = window[0][2]
                step.speech = [queued for queued, _, _ in window]
                window.clear()
                if self._end_window is not None:
                    self._end_window.clear()
            return step
        step.speech = [frame]
        if self._end_window is not None:
            self._end_window.append(is_speech)
            silent = sum(1 for speech in self._end_window if not speech)
            if len(self._end_window) == self._end_window.maxlen and silent >= RATIO * len(self._end_window):
                self.in_speech = False
                step.ended = True
        return step

    def likely_start(self, within_frames: int) -> tuple[int, list[bytes]] | None:
        """Where speech would start if each of the next ``within_frames`` frames is speech, at the
        soonest: the first sample of that start and the frames already queued from it, or None.

        ``process`` starts speech with exactly these frames when its prediction comes true, so what
        decodes them ahead of time decodes what it would have decoded then.
        """
        if self.in_speech:
            return None
        window = self._start_window
        size = window.maxlen or 1
        queued = list(window)
        voiced = sum(1 for _, speech, _ in queued if speech)
        if voiced + within_frames < RATIO * size:
            return None  # not even that many speech frames would start it: the common case, cheap
        ahead = max(1, size - len(queued))  # the window must be full to decide
        dropped = len(queued) + ahead - size
        voiced -= sum(1 for _, speech, _ in queued[:dropped] if speech)
        while ahead <= within_frames and dropped < len(queued):
            if voiced + ahead >= RATIO * size:
                kept = queued[dropped:]
                return kept[0][2], [frame for frame, _, _ in kept]
            voiced -= queued[dropped][1]
            dropped += 1
            ahead += 1
        return None

    def flush(self) -> SegmentStep:
        """End any speech now; speech that had begun but not yet filled the start window comes out too."""
        step = SegmentStep()
        if self.in_speech:
            step.ended = True
        else:
            queued = list(self._start_window)
            first_voiced = next((index for index, (_, speech, _) in enumerate(queued) if speech), None)
            if first_voiced is not None:
                step.started_at = queued[first_voiced][2]
                step.speech = [frame for frame, _, _ in queued[first_voiced:]]
                step.ended = True
        self._start_window.clear()
        if self._end_window is not None:
            self._end_window.clear()
        self.in_speech = False
        return step
