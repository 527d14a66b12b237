"""Decoding on every core: speech streams decoded in worker processes that share one loaded model.

pocketsphinx holds Python's GIL while it decodes, so one process transcribes on one core whatever the
instance has. Here a fork server (a fresh, single-threaded interpreter started by the server) loads
the language model and makes every decoder a worker may need, then forks the workers: they share all
of it copy-on-write, and a session adds only the pages its own decoding writes. The fork server
replaces a worker that dies and exits when the server goes (its stdin reaches end of file).

If the fork server itself dies (an OOM kill, a crash), a thread of the server that waits on it notices
at once and starts another, which loads the model again and forks a new generation of workers. The
workers of the dead one are not anyone's to replace any more and hold the old copy of the model, so
each is retired when its slot's new worker joins: it takes no new streams, finishes the ones it has,
and exits when the server closes its socket after the last one (the server, the container's PID 1,
inherits them and reaps them). A fork server that dies before it is ready is restarted after a
growing pause, and ``/ping`` reports the model unhealthy until one starts, so that SageMaker replaces
the instance rather than leave it short of workers.

The server talks to each worker over its own Unix socket, a request per call (open a stream, decode
a slice of audio, finalize, close), answered in order. The socket is in a 0700 directory, so only this
user's processes connect, and what crosses it is pickled as between any one program's processes. A
stream lives on one worker; new streams go to the worker with the fewest. When a worker dies its
streams fail with ``WorkerLostError`` (a ``SessionError`` with 1011), whether a call was waiting or
not, and the others go on; its replacement joins the pool when it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from model_server.model import CloseCode, SessionError
from model_server.settings import read_number

log = logging.getLogger("model_server.transcribe.workers")

#: How many worker processes decode; default: the CPUs this container may use.
WORKERS_VARIABLE = "TRANSCRIBE_WORKERS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: A cap on the decoders each worker makes at start by default (each about 58 MB, made once and shared
#: copy-on-write by all workers): 32 sessions on 8 CPUs need 4 each; a small instance does not make a
#: session limit's worth of them up front.
MAX_DEFAULT_DECODERS_PER_WORKER = 8
#: How long the fork server may take to load the model and start every worker.
START_TIMEOUT_SECONDS = 300.0
#: How long a new stream waits for a worker when every worker has just died.
REPLACEMENT_TIMEOUT_SECONDS = 30.0
#: A worker that dies this soon after it started is replaced only after this long (no crash loop);
#: fork servers are started at most this often, and one that fails to start doubles the pause.
RESTART_BACKOFF_SECONDS = 1.0
#: The longest pause between attempts to start a fork server that keeps failing.
MAX_RESTART_BACKOFF_SECONDS = 60.0
#: payload bytes, stream id, operation
HEADER = struct.Struct("!IQB")
HELLO = struct.Struct("!III")  # slot, pid, generation (which fork server forked it)
#: What the fork server writes on its ready pipe once the model is loaded and every worker forked.
READY = b"r"
#: The fork server's entry point (``-c``: ``-m`` would import this module twice, as the package's too).
FORK_SERVER_COMMAND = (
    "import sys; from model_server.models.transcribe.workers import fork_server_main; "
    "sys.exit(fork_server_main(sys.argv[1:]))"
)


class Op(IntEnum):
    HELLO = 0  # worker -> server, once: (slot, pid)
    OPEN = 1  # server -> worker: the recognizer's keyword arguments
    ACCEPT = 2  # server -> worker: PCM
    FINALIZE = 3  # server -> worker: finalize's keyword arguments
    CLOSE = 4  # server -> worker: end the stream, keep its decoder for the next
    RESULT = 5  # worker -> server: (transcripts, audio seconds)
    FAILED = 6  # worker -> server: what went wrong with this one call (UTF-8)


class WorkerLostError(SessionError):
    """The worker decoding a stream died: the stream's session ends with 1011, no one else's."""

    def __init__(self, reason: str) -> None:
        super().__init__(CloseCode.INTERNAL_ERROR, reason)


class WorkerCallError(RuntimeError):
    """One call failed inside a worker (the worker and its other streams go on)."""


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup CPU quota (v2 or v1)."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def _cgroup_cpu_quota(root: Path) -> float | None:
    """CPUs' worth of time the cgroup allows per period, or None without a limit."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        quota, period = (root / "cpu.max").read_text().split()[:2]  # v2: "max 100000" or "150000 100000"
        return None if quota == "max" else int(quota) / int(period)
    with contextlib.suppress(OSError, ValueError):
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())  # v1: -1 without a limit
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def worker_count(env: Mapping[str, str], cgroup_root: Path = CGROUP_ROOT) -> int:
    """``TRANSCRIBE_WORKERS``, or the available CPUs when it is unset (a bad value: ``SettingsError``)."""
    return read_number(
        env,
        WORKERS_VARIABLE,
        available_cpus(cgroup_root),
        int,
        1,
        None,
        "an integer >= 1 (default: the CPUs)",
    )


def decoders_per_worker(max_sessions: int, workers: int) -> int:
    """Decoders each worker makes at start: enough that, with new streams on the least busy worker,
    none makes another below the session limit, but at most ``MAX_DEFAULT_DECODERS_PER_WORKER``."""
    return max(1, min(MAX_DEFAULT_DECODERS_PER_WORKER, math.ceil(max_sessions / workers)))


# --- The worker side: the fork server and the processes it forks (synchronous, one thread each). ---


def _send(sock: socket.socket, op: Op, stream_id: int, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload), stream_id, op) + payload)


def _receive(stream: Any) -> tuple[Op, int, bytes] | None:
    """One message from a blocking binary file; None at end of file."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    size, stream_id, op = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return Op(op), stream_id, payload


def serve_worker(sock: socket.socket, pool: Any) -> None:
    """Answer the server's calls on ``sock`` in order until it closes; decoders come from ``pool``."""
    from model_server.models.transcribe.recognizer import StreamRecognizer

    streams: dict[int, tuple[Any, Any]] = {}
    incoming = sock.makefile("rb")
    while (message := _receive(incoming)) is not None:
        op, stream_id, payload = message
        try:
            if op is Op.OPEN:
                decoder = pool.acquire()
                streams[stream_id] = (StreamRecognizer(decoder, **pickle.loads(payload)), decoder)  # noqa: S301
                results: list[Any] = []
            elif op is Op.CLOSE:
                recognizer, decoder = streams.pop(stream_id)
                recognizer.close()
                pool.release(decoder)
                results = []
            elif op is Op.ACCEPT:
                results = streams[stream_id][0].accept(payload)
            elif op is Op.FINALIZE:
                results = streams[stream_id][0].finalize(**pickle.loads(payload))  # noqa: S301
            else:
                raise ValueError(f"unknown operation {op!r}")
            audio_seconds = streams[stream_id][0].audio_seconds if stream_id in streams else 0.0
            reply = pickle.dumps((results, audio_seconds), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            log.exception("stream call failed in worker", extra={"fields": {"event": "worker_call_failed"}})
            _send(sock, Op.FAILED, stream_id, f"{type(error).__name__}: {error}".encode())
            continue
        _send(sock, Op.RESULT, stream_id, reply)


@dataclass
class _ForkServer:
    socket_path: str
    workers: int
    decoders: int
    generation: int
    ready_fd: int  # closed once written: workers forked later do not hold it
    pool: Any = None
    children: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> (slot, started)

    def run(self) -> int:
        from model_server.models.transcribe.decoder import DecoderPool

        self.pool = DecoderPool(max_idle=self.decoders)
        self.pool.load(warm=self.decoders)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select below
        for slot in range(self.workers):
            self._fork(slot, (wake_read, wake_write))
        with contextlib.suppress(OSError):  # the server has gone: stdin says so below
            os.write(self.ready_fd, READY)
        os.close(self.ready_fd)
        self.ready_fd = -1
        while True:
            readable, _, _ = select.select([sys.stdin.fileno(), wake_read], [], [])
            if sys.stdin.fileno() in readable and not os.read(sys.stdin.fileno(), 4096):
                break  # the server has gone
            if wake_read in readable:
                os.read(wake_read, 4096)
            self._replace_exited((wake_read, wake_write))
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        # The server's exit does not clean up its socket's directory; nothing connects to it any more.
        shutil.rmtree(os.path.dirname(self.socket_path), ignore_errors=True)
        return 0

    def _replace_exited(self, wake: tuple[int, int]) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot, started = self.children.pop(pid)
            log.warning(
                "transcription worker exited; starting another",
                extra={
                    "fields": {
                        "event": "worker_exit",
                        "worker": slot,
                        "pid": pid,
                        "status": _describe_status(status),
                    }
                },
            )
            if time.monotonic() - started < RESTART_BACKOFF_SECONDS:
                time.sleep(RESTART_BACKOFF_SECONDS)
            self._fork(slot, wake)

    def _fork(self, slot: int, wake: tuple[int, int]) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = (slot, time.monotonic())
            return
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            for fd in (*wake, self.ready_fd):
                if fd >= 0:
                    os.close(fd)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket_path)
            _send(sock, Op.HELLO, 0, HELLO.pack(slot, os.getpid(), self.generation))
            serve_worker(sock, self.pool)
            code = 0
        except BaseException:
            log.exception("transcription worker failed", extra={"fields": {"event": "worker_failed"}})
        finally:
            logging.shutdown()
            os._exit(code)


def _describe_status(status: int) -> str:
    return _describe_exit(os.waitstatus_to_exitcode(status))


def _describe_exit(code: int) -> str:
    """A process's exit as ``subprocess`` reports it (a signal as its negative number), in words."""
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def fork_server_main(argv: list[str]) -> int:
    """The fork server's main: ``FORK_SERVER_COMMAND SOCKET WORKERS DECODERS GENERATION READY_FD``."""
    from model_server.logs import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server drains
    configure_logging(logging.getLevelNamesMapping().get(os.environ.get("LOG_LEVEL", "INFO").upper(), 20))
    workers, decoders, generation, ready_fd = (int(value) for value in argv[1:5])
    return _ForkServer(argv[0], workers, decoders, generation, ready_fd).run()


# --- The server side: asyncio, in the server's process. ---


@dataclass(eq=False)  # one per connection: compared and hashed by identity
class _Worker:
    slot: int
    pid: int
    generation: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: deque[asyncio.Future[tuple[list[Any], float]]] = field(default_factory=deque)
    streams: dict[int, RemoteStream] = field(default_factory=dict)
    alive: bool = True
    retired: bool = False  # a newer fork server's worker took its slot: no new streams


class RemoteStream:
    """A ``StreamRecognizer`` on a worker, called with ``await``; calls run in order on that worker."""

    def __init__(
        self,
        pool: WorkerPool,
        worker: _Worker,
        stream_id: int,
        on_lost: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        self._pool = pool
        self._worker = worker
        self._id = stream_id
        self._on_lost = on_lost
        self._busy = False
        self._closed = False
        self.audio_seconds = 0.0

    @property
    def worker_pid(self) -> int:
        return self._worker.pid

    async def accept(self, pcm: bytes) -> list[Any]:
        return await self._call(Op.ACCEPT, pcm)

    async def finalize(self, *, from_finalize: bool, closing: bool = False) -> list[Any]:
        return await self._call(
            Op.FINALIZE, pickle.dumps({"from_finalize": from_finalize, "closing": closing})
        )

    async def close(self) -> None:
        """Give the decoder back to its worker; nothing to do if the worker has died."""
        if self._closed:
            return
        self._closed = True
        self._worker.streams.pop(self._id, None)
        if self._worker.alive:
            with contextlib.suppress(WorkerLostError):
                await self._call(Op.CLOSE, b"", closing_call=True)
        self._pool.release_if_done(self._worker)

    async def _call(self, op: Op, payload: bytes, *, closing_call: bool = False) -> list[Any]:
        if not self._worker.alive:
            raise WorkerLostError(f"transcription worker {self._worker.slot} (pid {self.worker_pid}) died")
        if self._closed and not closing_call:
            raise RuntimeError("the stream is closed")
        self._busy = True
        try:
            results, self.audio_seconds = await self._pool.call(self._worker, self._id, op, payload)
        finally:
            self._busy = False
        return results

    def lost(self, reason: str) -> None:
        """The worker died: a waiting call fails by itself; an idle stream tells its session now."""
        self._closed = True
        if not self._busy and self._on_lost is not None:
            self._pool.spawn(self._on_lost(reason))


class WorkerPool:
    """Worker processes for decoding; ``start`` them (blocking) before the first ``open_stream``."""

    def __init__(self, *, workers: int, decoders_per_worker: int) -> None:
        self.workers = workers
        self.decoders_per_worker = decoders_per_worker
        self._directory = ""
        self._socket_path = ""
        self._listener: socket.socket | None = None
        self._fork_server: subprocess.Popen[bytes] | None = None
        self._generation = 0  # the latest fork server's, counted from 1
        self._started_at = 0.0  # when the latest fork server was started (monotonic)
        self._failed_starts = 0  # fork servers in a row that exited before they were ready
        # Between the thread that restarts the fork server and close(): which one runs, and no new one
        # once the pool closes.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Accepted in start(): (sock, slot, pid, generation).
        self._connected: list[tuple[socket.socket, int, int, int]] = []
        self._workers: dict[int, _Worker] = {}  # slot -> worker
        self._retired: set[_Worker] = set()  # still finishing their streams
        self._ids = itertools.count(1)
        self._ready: asyncio.Future[None] | None = None
        self._joined: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the fork server and wait until every worker has connected (blocking; run off the loop)."""
        self._directory = tempfile.mkdtemp(prefix="transcribe-workers-")
        self._socket_path = os.path.join(self._directory, "workers.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self._socket_path)
        # A new fork server's workers wait here until the event loop accepts them.
        listener.listen(max(64, 2 * self.workers))
        self._listener = listener
        deadline = time.monotonic() + timeout
        self._fork_server, ready = self._spawn_fork_server()
        failure = self._await_ready(self._fork_server, ready, timeout)
        if failure is not None:
            raise RuntimeError(f"the transcription fork server {failure}")
        listener.settimeout(0.1)
        while len(self._connected) < self.workers:
            if self._fork_server.poll() is not None:
                raise RuntimeError(
                    f"the transcription fork server exited with {self._fork_server.returncode} "
                    "while starting its workers"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"transcription workers did not start within {timeout:g} s")
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(timeout)
            hello = _receive(sock.makefile("rb"))
            if hello is None or hello[0] is not Op.HELLO:
                sock.close()
                continue
            slot, pid, generation = HELLO.unpack(hello[2])
            sock.settimeout(None)
            self._connected.append((sock, slot, pid, generation))
        listener.settimeout(None)
        threading.Thread(target=self._supervise, name="transcribe-fork-server", daemon=True).start()

    @property
    def healthy(self) -> bool:
        """False while the fork server has died and cannot be started again (``/ping`` says 503)."""
        return self._failed_starts == 0

    @property
    def worker_pids(self) -> dict[int, int]:
        """Live workers' pids by slot (for logs and tests)."""
        return {slot: worker.pid for slot, worker in self._workers.items() if worker.alive}

    @property
    def fork_server_pid(self) -> int | None:
        return self._fork_server.pid if self._fork_server is not None else None

    async def open_stream(
        self, options: Mapping[str, Any], on_lost: Callable[[str], Awaitable[None]] | None = None
    ) -> RemoteStream:
        """A new stream with ``StreamRecognizer(decoder, **options)`` on the least busy live worker.

        ``on_lost(reason)`` is awaited if the worker dies while no call of the stream is waiting.
        """
        await self._attach()
        worker = await self._least_busy()
        stream = RemoteStream(self, worker, next(self._ids), on_lost)
        worker.streams[stream._id] = stream
        try:
            await stream._call(Op.OPEN, pickle.dumps(dict(options)))
        except BaseException:
            worker.streams.pop(stream._id, None)
            raise
        return stream

    async def wait_for_workers(self, count: int) -> None:
        """Wait until ``count`` workers are live (a replacement has joined); bound it with a timeout."""
        await self._attach()
        assert self._joined is not None
        while len(self.worker_pids) < count:
            self._joined.clear()
            await self._joined.wait()

    def streams_per_worker(self) -> dict[int, int]:
        return {slot: len(worker.streams) for slot, worker in self._workers.items() if worker.alive}

    async def call(self, worker: _Worker, stream_id: int, op: Op, payload: bytes) -> tuple[list[Any], float]:
        if not worker.alive:
            raise WorkerLostError(f"transcription worker {worker.slot} (pid {worker.pid}) died")
        future: asyncio.Future[tuple[list[Any], float]] = asyncio.get_running_loop().create_future()
        worker.pending.append(future)
        # One write, never writelines: on CPython 3.12 writelines sends through sendmsg, and an empty
        # element (CLOSE has no payload) is "sent" as 0 bytes forever, keeping the loop busy at 100%.
        worker.writer.write(HEADER.pack(len(payload), stream_id, op) + payload)
        with contextlib.suppress(ConnectionError):
            # The worker died mid-request: its reader sees the end and fails the future with 1011.
            await worker.writer.drain()
        return await future

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release_if_done(self, worker: _Worker) -> None:
        """Let a retired worker go once its last stream has closed: it exits at end of file."""
        if worker.retired and not worker.streams and worker.alive:
            worker.writer.close()

    async def close(self) -> None:
        """Stop the workers and the fork server (the server's exit does the same)."""
        self._closing = True
        with self._lock:
            self._stopping.set()
            process = self._fork_server
        if self._server is not None:
            self._server.close()
        for worker in [*self._workers.values(), *self._retired]:
            worker.writer.close()
        for sock, *_ in self._connected:
            sock.close()
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:  # a restarted one still loading: nothing to finish
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._listener is not None:
            self._listener.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    async def _attach(self) -> None:
        """On the loop's first use: take over the connections ``start`` accepted, accept replacements."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._joined = asyncio.Event()
            with self._lock:  # not while the fork server's keeper lets these go (_retire_unattached)
                connected, self._connected = self._connected, []
            try:
                for sock, slot, pid, generation in connected:
                    reader, writer = await asyncio.open_unix_connection(sock=sock)
                    self._join(_Worker(slot, pid, generation, reader, writer))
                assert self._listener is not None
                self._server = await asyncio.start_unix_server(self._on_replacement, sock=self._listener)
            except BaseException as error:
                self._ready.set_exception(error)
                raise
            self._ready.set_result(None)
        await asyncio.shield(self._ready)

    async def _on_replacement(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await reader.readexactly(HEADER.size)
            size, _, op = HEADER.unpack(header)
            slot, pid, generation = HELLO.unpack(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, struct.error):
            writer.close()
            return
        if op != Op.HELLO:
            writer.close()
            return
        self._join(_Worker(slot, pid, generation, reader, writer))

    def _join(self, worker: _Worker) -> None:
        previous = self._workers.get(worker.slot)
        self._workers[worker.slot] = worker
        if previous is not None and previous.alive and previous.generation < worker.generation:
            self._retire(previous)
        self.spawn(self._read_replies(worker))
        assert self._joined is not None
        self._joined.set()
        log.info(
            "transcription worker ready",
            extra={"fields": {"event": "worker_ready", "worker": worker.slot, "pid": worker.pid}},
        )

    async def _least_busy(self) -> _Worker:
        async with asyncio.timeout(REPLACEMENT_TIMEOUT_SECONDS):
            while True:
                live = [worker for worker in self._workers.values() if worker.alive]
                if live:
                    return min(live, key=lambda worker: (len(worker.streams), worker.slot))
                assert self._joined is not None
                self._joined.clear()
                await self._joined.wait()

    async def _read_replies(self, worker: _Worker) -> None:
        reader = worker.reader
        try:
            while True:
                size, _, op = HEADER.unpack(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(size)
                future = worker.pending.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if op == Op.RESULT:
                    future.set_result(pickle.loads(payload))  # noqa: S301
                else:
                    future.set_exception(WorkerCallError(payload.decode(errors="replace")))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self._lost(worker)

    def _retire(self, worker: _Worker) -> None:
        """A worker whose fork server has died makes way for the new one's, once its streams end."""
        worker.retired = True
        self._retired.add(worker)
        log.info(
            "transcription worker of an earlier fork server retired; it exits after its sessions",
            extra={
                "fields": {
                    "event": "worker_retired",
                    "worker": worker.slot,
                    "pid": worker.pid,
                    "sessions": len(worker.streams),
                }
            },
        )
        self.release_if_done(worker)

    def _lost(self, worker: _Worker) -> None:
        worker.alive = False
        worker.writer.close()
        self._retired.discard(worker)
        # A worker whose fork server died is the server's child when the server is the container's
        # init (PID 1, as in the image): reap it. Otherwise it is someone else's, and this ends at once.
        _reap_when_done(worker.pid)
        if self._closing:
            return
        reason = f"transcription worker {worker.slot} (pid {worker.pid}) died"
        if worker.retired and not worker.streams:
            log.info(
                "retired transcription worker exited",
                extra={"fields": {"event": "worker_retired_exit", "worker": worker.slot, "pid": worker.pid}},
            )
        else:
            log.warning(
                "transcription worker lost; ending its sessions",
                extra={
                    "fields": {
                        "event": "worker_lost",
                        "worker": worker.slot,
                        "pid": worker.pid,
                        "sessions": len(worker.streams),
                    }
                },
            )
        while worker.pending:
            future = worker.pending.popleft()
            if not future.done():
                future.set_exception(WorkerLostError(reason))
        for stream in list(worker.streams.values()):
            stream.lost(reason)
        worker.streams.clear()
        if self._workers.get(worker.slot) is worker:
            del self._workers[worker.slot]

    # --- The fork server's keeper: a thread, so that it notices a death with no event loop running. ---

    def _spawn_fork_server(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start a fork server of the next generation; return it and the read end of its ready pipe."""
        ready_read, ready_write = os.pipe()
        self._generation += 1
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    FORK_SERVER_COMMAND,
                    self._socket_path,
                    str(self.workers),
                    str(self.decoders_per_worker),
                    str(self._generation),
                    str(ready_write),
                ],
                stdin=subprocess.PIPE,  # its end of file tells the fork server that the server has gone
                pass_fds=(ready_write,),
                cwd=Path(__file__).resolve().parents[3],
            )
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        self._started_at = time.monotonic()
        return process, ready_read

    @staticmethod
    def _await_ready(process: subprocess.Popen[bytes], ready: int, timeout: float) -> str | None:
        """None once ``process`` has loaded the model and forked its workers; else what went wrong."""
        try:
            readable, _, _ = select.select([ready], [], [], timeout)
            if readable and os.read(ready, len(READY)) == READY:
                return None
        finally:
            os.close(ready)
        if not readable:
            process.kill()
            process.wait()
            return f"was not ready within {timeout:g} s (killed)"
        # End of file without READY: the fork server (and every worker it forked) closed the pipe.
        return f"died while loading ({_describe_exit(process.wait())})"

    def _supervise(self) -> None:
        """Wait for the fork server to exit; start another until one is ready, pausing longer each time."""
        while True:
            with self._lock:
                process = self._fork_server
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error(
                "transcription fork server exited; starting another (sessions on its workers go on)",
                extra={
                    "fields": {
                        "event": "fork_server_exit",
                        "pid": process.pid,
                        "status": _describe_exit(code),
                        "generation": self._generation,
                    }
                },
            )
            while (failure := self._restart()) is not None:
                if self._stopping.is_set():
                    return
                failures = self._failed_starts + 1
                log.error(
                    "transcription fork server failed to start; /ping reports unhealthy until one starts",
                    extra={
                        "fields": {
                            "event": "fork_server_start_failed",
                            "reason": failure,
                            "failures": failures,
                            "retry_in_s": round(self._pause(failures), 3),
                        }
                    },
                )
                self._failed_starts = failures  # unhealthy, after the line above (a test waits on this)
            if self._stopping.is_set():
                return
            self._retire_unattached()
            log.info(
                "transcription fork server ready again; its workers take over",
                extra={
                    "fields": {
                        "event": "fork_server_ready",
                        "pid": self._fork_server.pid if self._fork_server else None,
                        "generation": self._generation,
                        "workers": self.workers,
                    }
                },
            )
            self._failed_starts = 0  # healthy again, after the line above (a test waits on this)

    def _restart(self) -> str | None:
        """Start a new fork server after the pause; None once it is ready, else why it is not."""
        if self._stopping.wait(self._pause(self._failed_starts)):
            return "the pool is closing"
        with self._lock:
            if self._stopping.is_set():
                return "the pool is closing"
            try:
                self._fork_server, ready = self._spawn_fork_server()
            except OSError as error:
                return f"could not be started: {error}"
        return self._await_ready(self._fork_server, ready, START_TIMEOUT_SECONDS)

    def _retire_unattached(self) -> None:
        """Before the event loop's first use the old workers have no streams: let them go at once (the
        new ones wait in the listener's backlog for it)."""
        with self._lock:
            connected, self._connected = self._connected, []
        for sock, _, pid, _ in connected:
            sock.close()
            _reap_when_done(pid)

    def _pause(self, failures: int) -> float:
        """Seconds before the next start: at most one a ``RESTART_BACKOFF_SECONDS``, doubling per failure."""
        backoff = 0.0
        if failures:
            backoff = min(MAX_RESTART_BACKOFF_SECONDS, RESTART_BACKOFF_SECONDS * 2 ** (failures - 1))
        return max(backoff, self._started_at + RESTART_BACKOFF_SECONDS - time.monotonic())


def _reap_when_done(pid: int) -> None:
    """Reap ``pid`` once it exits if it is this process's child, from a thread (returns at once)."""

    def reap() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    threading.Thread(target=reap, name="transcribe-reap", daemon=True).start()
