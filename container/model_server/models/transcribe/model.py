"""The ``transcribe`` model: live English speech-to-text with pocketsphinx at ``v1/listen``.

Settings (environment variables, checked when the model is created):

- ``TRANSCRIBE_IDLE_TIMEOUT_SECONDS`` (default 10): a session that sends no audio and no message for
  this long is closed, as Deepgram closes after 10 s (its ``NET-0001``). The server closes it, with
  1008 and a reason naming the timeout.
- ``TRANSCRIBE_WORKERS`` (default: the CPUs the container may use, cgroup quota included): worker
  processes that decode, each on its own core (``workers.py``).
- ``TRANSCRIBE_WARM_DECODERS`` (default: ``TRANSCRIBE_MAX_SESSIONS`` / workers, rounded up, at most
  8): decoders each worker has from the start, made once in the fork server (at least one; about
  58 MB each, shared copy-on-write by every worker), so a session neither waits about 0.4 s for one
  nor adds a whole decoder's memory; a worker that needs more makes them, and keeps this many idle.
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
from model_server.models.transcribe.formatting import Formatter
from model_server.models.transcribe.messages import MODEL_ARCH, MODEL_NAME, ModelInfo
from model_server.models.transcribe.params import ListenParams, parse_listen_query
from model_server.models.transcribe.session import DecoderBudget, DecodingRuntime, TranscribeSession
from model_server.models.transcribe.workers import WorkerPool, decoders_per_worker, worker_count
from model_server.settings import read_number, read_session_limits

DEFAULT_IDLE_TIMEOUT_SECONDS = 10.0  # Deepgram's: "no audio data or KeepAlive within a 10-second window"
DEFAULT_MAX_SESSIONS = 32


class TranscribeModel(Model):
    """pocketsphinx behind Deepgram's live ``v1/listen`` messages; one decoder per session."""

    name = "transcribe"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.idle_timeout, self.max_sessions = read_session_limits(
            env, "TRANSCRIBE", idle_timeout=DEFAULT_IDLE_TIMEOUT_SECONDS, max_sessions=DEFAULT_MAX_SESSIONS
        )
        workers = worker_count(env)
        # Enough for each worker's share of the session limit: made once before the workers are forked,
        # they are shared copy-on-write, so a session adds only what its decoding writes.
        self._warm_decoders = read_number(
            env,
            "TRANSCRIBE_WARM_DECODERS",
            decoders_per_worker(self.max_sessions, workers),
            int,
            0,
            None,
            "an integer >= 0",
        )
        # Decoders run in worker processes (pocketsphinx holds the GIL while it decodes); this process
        # only formats results, on one thread.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcribe-format")
        model_info = ModelInfo(name=MODEL_NAME, version=version("pocketsphinx"), arch=MODEL_ARCH)
        self._runtime = DecodingRuntime(
            workers=WorkerPool(workers=workers, decoders_per_worker=max(1, self._warm_decoders)),
            executor=executor,
            model_info=model_info,
            formatter=Formatter(),
            budget=DecoderBudget(self.max_sessions),
        )

    def load(self) -> None:
        self._runtime.workers.start()
        self._runtime.executor.submit(self._runtime.formatter.load).result()

    def healthy(self) -> bool:
        # False while the fork server has died and cannot be started again (workers.py).
        return self._runtime.workers.healthy

    def parse_query(self, query: Mapping[str, str]) -> ListenParams:
        return parse_listen_query(query)

    def open_session(self, session: Session, params: object) -> SessionHandler:
        if not isinstance(params, ListenParams):
            raise TypeError(f"expected ListenParams from parse_query, got {type(params).__name__}")
        return TranscribeSession(session, params, self._runtime)
