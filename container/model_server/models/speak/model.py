"""The ``speak`` model: streaming English text to speech with espeak-ng at ``v1/speak``.

Settings (environment variables, checked when the model is created):

- ``SPEAK_IDLE_TIMEOUT_SECONDS`` (default 300): a session that sends no message for this long is
  closed with 1008. Deepgram's v1/speak has no KeepAlive message, and a voice agent's speech stream
  stays quiet while its user talks, so this is the server's usual five minutes.
- ``SPEAK_MAX_SESSIONS`` (default 64): sessions this model serves at once; more are closed with 1013.
  Every session shares the one synthesis thread (espeak-ng is one synthesizer per process), which
  speaks about 100 times faster than real time on one core, so 64 talking at once still keep up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from model_server.model import Model, Session, SessionHandler
from model_server.models.speak.engine import Engine
from model_server.models.speak.params import SpeakParams, parse_speak_query
from model_server.models.speak.session import SpeakSession, SpeechRuntime
from model_server.models.speak.voices import VOICES
from model_server.settings import read_session_limits

DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
DEFAULT_MAX_SESSIONS = 64


class SpeakModel(Model):
    """espeak-ng behind Deepgram's streaming ``v1/speak`` messages; one synthesis thread for all."""

    name = "speak"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.idle_timeout, self.max_sessions = read_session_limits(
            env, "SPEAK", idle_timeout=DEFAULT_IDLE_TIMEOUT_SECONDS, max_sessions=DEFAULT_MAX_SESSIONS
        )
        # libespeak-ng is one global synthesizer and not thread-safe: one thread makes every call.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speak-synth")
        self._runtime = SpeechRuntime(engine=Engine(), executor=executor)

    def load(self) -> None:
        self._runtime.executor.submit(self._load).result()

    def _load(self) -> None:
        engine = self._runtime.engine
        engine.load()
        for voice in VOICES.values():  # a voice the data lacks fails here, before /ping says ready
            engine.check_voice(voice.espeak)
            engine.speak("ready", voice.espeak, lambda _: True)

    def parse_query(self, query: Mapping[str, str]) -> SpeakParams:
        return parse_speak_query(query)

    def open_session(self, session: Session, params: object) -> SessionHandler:
        if not isinstance(params, SpeakParams):
            raise TypeError(f"expected SpeakParams from parse_query, got {type(params).__name__}")
        return SpeakSession(session, params, self._runtime)
