"""pocketsphinx decoders: one per session, sharing the one language model the process loads.

A default ``pocketsphinx.Decoder`` loads its own copy of everything, about 91 MB. pocketsphinx 5 has
no way to share the acoustic model or dictionary between decoders, but it can share an ``NGramModel``:
each decoder here gets the process's one language model (32 MB), which brings a decoder down to about
58 MB (the acoustic model, the dictionary and the search's lexicon tree stay per decoder).

The language model caches its last lookup inside itself, so decoders that share it must never run at
the same time: every call into any decoder of a pool happens on the pool's one decoding thread (see
``TranscribeModel``). Decoders of finished sessions are kept and reset for the next session, since
making one takes about 0.4 s of CPU.
"""

from __future__ import annotations

import threading
from typing import Any

from pocketsphinx import Config, Decoder, LogMath, NGramModel, get_model_path

#: The search name the shared language model is registered under in every decoder.
SEARCH = "lm"
LANGUAGE_MODEL = "en-us/en-us.lm.bin"
ACOUSTIC_MODEL = "en-us/en-us"
DICTIONARY = "en-us/cmudict-en-us.dict"
#: The most HMMs the search keeps active per 10 ms frame (pocketsphinx's ``maxhmmpf``, 30000 by
#: default): the bound on one stream's decoding CPU, which every session of a worker shares. Audio that
#: passes for speech but is none (telephone audio decoded as the wrong G.711 law) cost 0.66 CPU s per
#: audio second with the default and 0.45 with this cap, clean speech 0.18 and 0.16, and the word error
#: rates of both test sets did not move (README, "Decoder settings tried"); 7000 and below raised the
#: broad set's.
MAX_HMMS_PER_FRAME = 10000


def decoder_config() -> Any:
    """The pocketsphinx configuration every decoder of this model uses (quiet: errors only)."""
    return Config(
        hmm=get_model_path(ACOUSTIC_MODEL),
        dict=get_model_path(DICTIONARY),
        lm=None,
        maxhmmpf=MAX_HMMS_PER_FRAME,
        loglevel="ERROR",
    )


class DecoderPool:
    """Makes decoders that share one language model, and keeps idle ones for reuse."""

    def __init__(self, *, max_idle: int) -> None:
        self._max_idle = max_idle
        self._language_model: Any = None
        self._idle: list[Any] = []
        self._initial_cmn = ""
        self._lock = threading.Lock()  # guards _idle only; decoding is serialized by the caller
        self.created = 0

    def load(self, *, warm: int) -> None:
        """Read the language model and make ``warm`` decoders (at least one) ahead of the first sessions."""
        config = decoder_config()
        log_math = LogMath(config["logbase"])
        self._language_model = NGramModel(config, log_math, get_model_path(LANGUAGE_MODEL))
        first = self._create()
        # Cepstral mean normalisation adapts to each stream; a reused decoder starts from these values.
        self._initial_cmn = first.get_cmn()
        with self._lock:
            self._idle.append(first)
        for _ in range(max(0, warm - 1)):
            decoder = self._create()
            with self._lock:
                self._idle.append(decoder)

    def acquire(self) -> Any:
        """An idle decoder if there is one, else a new one (call on the decoding thread)."""
        if self._language_model is None:
            raise RuntimeError("DecoderPool.load() has not run")
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._create()

    def release(self, decoder: Any) -> None:
        """Reset ``decoder`` (its utterance already ended) and keep it, or drop it if enough are idle.

        The reset makes it decode exactly as a new decoder would: ``reinit_feat`` rebuilds its feature
        computation (the cepstral mean and the noise estimate, both adapted to the last stream) from the
        configuration, in about 0.1 ms. Resetting the mean alone left the noise estimate, and a clip
        came out with other confidences, sometimes other words, than on a new decoder.
        """
        decoder.reinit_feat()
        decoder.set_cmn(self._initial_cmn)
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(decoder)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def _create(self) -> Any:
        decoder = Decoder(decoder_config())
        decoder.add_lm(SEARCH, self._language_model)
        decoder.activate_search(SEARCH)
        self.created += 1
        return decoder
