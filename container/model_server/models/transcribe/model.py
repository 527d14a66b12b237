"""The ``transcribe`` model: live English speech-to-text with pocketsphinx at ``v1/listen``.

Settings (environment variables, checked when the model is created):

- ``TRANSCRIBE_IDLE_TIMEOUT_SECONDS`` (default 10): a session that sends no audio and no message for
  this long is closed, as Deepgram closes after 10 s (its ``NET-0001``). The server closes it, with
  1008 and a reason naming the timeout.
- ``TRANSCRIBE_WARM_DECODERS`` (default 2): decoders made at start-up, so the first sessions do not
  wait about 0.4 s each for one (at least one is always made: it proves the model loads before
  ``/ping`` says ready); finished sessions' decoders are reused, and up to
  ``max(4, TRANSCRIBE_WARM_DECODERS)`` idle ones (about 58 MB each) are kept.
- ``TRANSCRIBE_MAX_SESSIONS`` (default 32): sessions this model serves at once; each holds a decoder
  of about 58 MB, so this caps the model's memory (32 x 58 MB, about 1.9 GB) well below what the
  server's ``MAX_SESSIONS`` alone allows. More are closed with 1013 (try again later). It also caps
  decoders: a ``multichannel=true`` session holds one per channel, and one that would take the model
  past the cap is closed with 1013 when its audio starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

from model_server.model import Model, Session, SessionHandler
from model_server.models.transcribe.decoder import DecoderPool
from model_server.models.transcribe.formatting import Formatter
from model_server.models.transcribe.messages import MODEL_ARCH, MODEL_NAME, ModelInfo
from model_server.models.transcribe.params import ListenParams, parse_listen_query
from model_server.models.transcribe.session import DecoderBudget, DecodingRuntime, TranscribeSession
from model_server.settings import read_number

DEFAULT_IDLE_TIMEOUT_SECONDS = 10.0  # Deepgram's: "no audio data or KeepAlive within a 10-second window"
DEFAULT_WARM_DECODERS = 2
DEFAULT_MAX_SESSIONS = 32
MIN_IDLE_DECODERS = 4


class TranscribeModel(Model):
    """pocketsphinx behind Deepgram's live ``v1/listen`` messages; one decoder per session."""

    name = "transcribe"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.idle_timeout = read_number(
            env,
            "TRANSCRIBE_IDLE_TIMEOUT_SECONDS",
            DEFAULT_IDLE_TIMEOUT_SECONDS,
            float,
            0.001,
            None,
            "a number of seconds > 0",
        )
        self._warm_decoders = read_number(
            env, "TRANSCRIBE_WARM_DECODERS", DEFAULT_WARM_DECODERS, int, 0, None, "an integer >= 0"
        )
        self.max_sessions = read_number(
            env, "TRANSCRIBE_MAX_SESSIONS", DEFAULT_MAX_SESSIONS, int, 1, None, "an integer >= 1"
        )
        pool = DecoderPool(max_idle=max(MIN_IDLE_DECODERS, self._warm_decoders))
        # One thread runs every decoder: they share one language model that is not safe to use from two
        # threads at once, and pocketsphinx holds the GIL while it decodes, so more threads would not
        # decode faster anyway.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcribe-decode")
        model_info = ModelInfo(name=MODEL_NAME, version=version("pocketsphinx"), arch=MODEL_ARCH)
        self._runtime = DecodingRuntime(
            pool=pool,
            executor=executor,
            model_info=model_info,
            formatter=Formatter(),
            budget=DecoderBudget(self.max_sessions),
        )

    def load(self) -> None:
        self._runtime.executor.submit(self._runtime.pool.load, warm=self._warm_decoders).result()
        self._runtime.executor.submit(self._runtime.formatter.load).result()

    def parse_query(self, query: Mapping[str, str]) -> ListenParams:
        return parse_listen_query(query)

    def open_session(self, session: Session, params: object) -> SessionHandler:
        if not isinstance(params, ListenParams):
            raise TypeError(f"expected ListenParams from parse_query, got {type(params).__name__}")
        return TranscribeSession(session, params, self._runtime)
