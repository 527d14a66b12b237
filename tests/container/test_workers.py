"""Decoding worker processes (model_server.models.transcribe.workers), run as real processes.

Each real-process test starts its own pool (a fork server and two workers with one decoder each).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import wave
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from model_server.model import CloseCode
from model_server.models.transcribe import workers as workers_module
from model_server.models.transcribe.workers import (
    WorkerCallError,
    WorkerLostError,
    WorkerPool,
    available_cpus,
    decoders_per_worker,
    worker_count,
)
from model_server.settings import SettingsError
from tests.support.processes import REPO_ROOT, wait_until

SPEECH = REPO_ROOT / "tests" / "data" / "speech"
OPTIONS = {"interim_results": False, "endpointing_ms": 300}
SLICE = 8000  # bytes: what a session hands a decoder at a time
TIMEOUT = 30.0


def read_pcm(name: str) -> bytes:
    with wave.open(str(SPEECH / name), "rb") as clip:
        return clip.readframes(clip.getnframes())


async def transcribe(stream: Any, pcm: bytes) -> str:
    results = []
    for offset in range(0, len(pcm), SLICE):
        results += await stream.accept(pcm[offset : offset + SLICE])
    results += await stream.finalize(from_finalize=False, closing=True)
    return " ".join(result.text for result in results if result.is_final and result.text)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` on the event loop until it holds; fail naming ``what`` at the deadline."""
    try:
        async with asyncio.timeout(TIMEOUT):
            # Polled: the pool has no event for these (a process's exit, another thread's restart).
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {TIMEOUT:g} s waiting for {what}") from None


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # not a zombie


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(workers=2, decoders_per_worker=1)
    workers.start()
    yield workers
    if workers.fork_server_pid is not None and process_exists(workers.fork_server_pid):
        asyncio.run(workers.close())


def run_with(pool: WorkerPool, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh event loop, then close the pool on that same loop."""

    async def main() -> None:
        try:
            async with asyncio.timeout(TIMEOUT * 3):
                await scenario()
        finally:
            await pool.close()

    asyncio.run(main())


# --- How many workers: the CPUs the container may use. ---


def test_cgroup_v2_quota_caps_the_cpu_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one worker
    assert available_cpus(tmp_path) == 1


def test_cgroup_v2_without_a_quota_leaves_the_affinity(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota_caps_the_cpu_count(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1


def test_quota_above_the_affinity_does_not_raise_the_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("6400000 100000\n")  # 64 CPUs' worth of time
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_worker_count_defaults_to_the_cpus_and_takes_the_setting(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert worker_count({}, tmp_path) == 1
    assert worker_count({"TRANSCRIBE_WORKERS": "3"}, tmp_path) == 3
    with pytest.raises(SettingsError, match=r"TRANSCRIBE_WORKERS='0' is not valid: must be an integer >= 1"):
        worker_count({"TRANSCRIBE_WORKERS": "0"}, tmp_path)


def test_each_worker_makes_enough_decoders_for_its_share_of_the_session_limit_up_to_a_cap() -> None:
    assert decoders_per_worker(32, 8) == 4
    assert decoders_per_worker(15, 2) == 8
    assert decoders_per_worker(1, 4) == 1
    assert decoders_per_worker(32, 2) == 8  # capped: a small instance does not make them all up front


# --- Real processes. ---


def test_streams_spread_over_the_workers_decode_there_and_stop_with_the_pool(pool: WorkerPool) -> None:
    async def scenario() -> None:
        first = await pool.open_stream(OPTIONS)
        second = await pool.open_stream(OPTIONS)
        assert {first.worker_pid, second.worker_pid} == set(pool.worker_pids.values())
        pids.extend(pool.worker_pids.values())
        assert all(pid != os.getpid() for pid in pool.worker_pids.values())
        texts = await asyncio.gather(
            transcribe(first, read_pcm("s01.wav")), transcribe(second, read_pcm("s02.wav"))
        )
        assert texts == ["please call me back tomorrow morning", "the weather is nice today"]
        assert first.audio_seconds == pytest.approx(len(read_pcm("s01.wav")) / 32000)
        await first.close()
        await second.close()
        third = await pool.open_stream(OPTIONS)
        assert await transcribe(third, read_pcm("s02.wav")) == "the weather is nice today"
        await third.close()
        # A call that fails in a worker fails alone: the worker and its other streams go on.
        with pytest.raises(WorkerCallError, match="unexpected keyword argument 'no_such_option'"):
            await pool.open_stream({**OPTIONS, "no_such_option": True})
        assert (
            await transcribe(await pool.open_stream(OPTIONS), read_pcm("s02.wav"))
            == "the weather is nice today"
        )
        assert set(pool.worker_pids.values()) == set(pids[:2]) and pool.fork_server_pid is not None
        pids.append(pool.fork_server_pid)

    pids: list[int] = []
    run_with(pool, scenario)
    # Closing the pool stops the fork server and every worker.
    wait_until(lambda: not any(process_exists(pid) for pid in pids), timeout=TIMEOUT, what="workers to exit")


def test_killing_a_worker_ends_only_its_streams_with_1011_and_a_new_worker_serves(pool: WorkerPool) -> None:
    async def scenario() -> None:
        lost: dict[str, str] = {}
        told = asyncio.Event()

        def on_lost(name: str) -> Callable[[str], Awaitable[None]]:
            async def record(reason: str) -> None:
                lost[name] = reason
                told.set()

            return record

        doomed = await pool.open_stream(OPTIONS, on_lost("doomed"))
        survivor = await pool.open_stream(OPTIONS, on_lost("survivor"))
        killed = doomed.worker_pid
        os.kill(killed, signal.SIGKILL)
        async with asyncio.timeout(TIMEOUT):
            await told.wait()  # the idle stream is told without calling anything
        assert lost == {"doomed": f"transcription worker 0 (pid {killed}) died"}
        with pytest.raises(WorkerLostError) as raised:
            await doomed.accept(read_pcm("s01.wav")[:SLICE])
        assert raised.value.code == CloseCode.INTERNAL_ERROR
        assert await transcribe(survivor, read_pcm("s02.wav")) == "the weather is nice today"
        async with asyncio.timeout(TIMEOUT):
            await pool.wait_for_workers(2)
        assert killed not in pool.worker_pids.values()
        # The new worker is the least busy one (the survivor's stream is still open), so it serves next.
        fresh = await pool.open_stream(OPTIONS)
        assert fresh.worker_pid == pool.worker_pids[0] != killed
        assert await transcribe(fresh, read_pcm("s01.wav")) == "please call me back tomorrow morning"
        assert "survivor" not in lost

    run_with(pool, scenario)


def test_a_call_waiting_on_a_worker_that_dies_fails_with_1011(pool: WorkerPool) -> None:
    async def scenario() -> None:
        stream = await pool.open_stream(OPTIONS)
        pcm = read_pcm("s01.wav") * 20  # 80 s of audio in one call: the worker is still busy when killed
        call = asyncio.ensure_future(stream.accept(pcm))
        await asyncio.sleep(0)  # the request is written
        os.kill(stream.worker_pid, signal.SIGKILL)
        with pytest.raises(WorkerLostError):
            await call

    run_with(pool, scenario)


def test_a_closed_stream_leaves_the_event_loop_idle(pool: WorkerPool) -> None:
    """CLOSE carries no payload; sending it must not leave the loop polling its worker's socket."""
    wakeups: list[int] = []

    async def scenario() -> None:
        stream = await pool.open_stream(OPTIONS)
        await stream.close()
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        real_select = selector.select
        count = [0]

        def counting_select(timeout: float | None = None) -> Any:
            count[0] += 1
            return real_select(timeout)

        selector.select = counting_select
        await asyncio.sleep(0.5)
        selector.select = real_select
        wakeups.append(count[0])

    run_with(pool, scenario)
    # An idle loop wakes a handful of times (the sleep's timer); a socket stuck "writable" makes it
    # spin tens of thousands of times in half a second.
    assert wakeups[0] < 100, f"the event loop woke {wakeups[0]} times in 0.5 s with nothing to do"


def test_a_killed_fork_server_is_replaced_while_streams_on_its_workers_go_on(pool: WorkerPool) -> None:
    pids: list[int] = []

    async def scenario() -> None:
        streaming = await pool.open_stream(OPTIONS)
        old_fork_server, old_workers = pool.fork_server_pid, set(pool.worker_pids.values())
        assert old_fork_server is not None
        pcm = read_pcm("s01.wav")
        middle = len(pcm) // 2 // SLICE * SLICE
        results = []
        for offset in range(0, middle, SLICE):
            results += await streaming.accept(pcm[offset : offset + SLICE])
        os.kill(old_fork_server, signal.SIGKILL)

        def new_generation() -> bool:
            workers = set(pool.worker_pids.values())
            return len(workers) == 2 and workers.isdisjoint(old_workers)

        # The session goes on on its worker while a new fork server loads and its workers take over.
        await eventually(new_generation, "a new fork server's two workers to join")
        new_fork_server = pool.fork_server_pid
        assert new_fork_server not in (None, old_fork_server)
        assert all(parent_of(pid) == new_fork_server for pid in pool.worker_pids.values())
        assert pool.healthy
        for offset in range(middle, len(pcm), SLICE):
            results += await streaming.accept(pcm[offset : offset + SLICE])
        results += await streaming.finalize(from_finalize=False, closing=True)
        text = " ".join(result.text for result in results if result.is_final and result.text)
        assert text == "please call me back tomorrow morning"
        await streaming.close()
        # The dead fork server's workers were retired: each exits once its last stream has closed.
        await eventually(
            lambda: not any(process_exists(pid) for pid in old_workers), "the old workers to exit"
        )
        # The new fork server replaces its workers as the first one did.
        killed = pool.worker_pids[0]
        os.kill(killed, signal.SIGKILL)
        await eventually(
            lambda: len(pool.worker_pids) == 2 and killed not in pool.worker_pids.values(),
            "a replacement for the killed worker",
        )
        fresh = await pool.open_stream(OPTIONS)
        assert fresh.worker_pid == pool.worker_pids[0] != killed
        assert parent_of(fresh.worker_pid) == new_fork_server
        assert await transcribe(fresh, read_pcm("s02.wav")) == "the weather is nice today"
        pids.extend([new_fork_server, *pool.worker_pids.values()])

    run_with(pool, scenario)
    wait_until(lambda: not any(process_exists(pid) for pid in pids), timeout=TIMEOUT, what="workers to exit")


def test_a_fork_server_that_cannot_start_again_makes_the_pool_unhealthy_until_a_retry_starts_one(
    pool: WorkerPool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=workers_module.log.name)

    def events(name: str) -> list[logging.LogRecord]:
        return [record for record in caplog.records if getattr(record, "fields", {}).get("event") == name]

    async def scenario() -> None:
        stream = await pool.open_stream(OPTIONS)
        old_workers = set(pool.worker_pids.values())
        assert pool.healthy and pool.fork_server_pid is not None
        # A fork server that dies at start, as one killed while it loads would.
        monkeypatch.setattr(workers_module, "FORK_SERVER_COMMAND", "import sys; sys.exit(3)")
        os.kill(pool.fork_server_pid, signal.SIGKILL)
        await eventually(lambda: not pool.healthy, "the pool to report itself unhealthy")
        (failed,) = events("fork_server_start_failed")
        assert failed.fields == {  # type: ignore[attr-defined]
            "event": "fork_server_start_failed",
            "reason": "died while loading (exit code 3)",
            "failures": 1,
            "retry_in_s": pytest.approx(workers_module.RESTART_BACKOFF_SECONDS, abs=0.05),
        }
        monkeypatch.undo()
        # The dead fork server's workers still serve their streams meanwhile.
        assert await transcribe(stream, read_pcm("s02.wav")) == "the weather is nice today"
        await eventually(lambda: pool.healthy, "a retry to start a fork server")
        (ready,) = events("fork_server_ready")
        # Backed off, not a crash loop: the retry came at least the pause after the failure.
        assert ready.created - failed.created >= workers_module.RESTART_BACKOFF_SECONDS - 0.05
        await eventually(
            lambda: len(pool.worker_pids) == 2 and old_workers.isdisjoint(pool.worker_pids.values()),
            "the new fork server's workers to join",
        )
        fresh = await pool.open_stream(OPTIONS)
        assert await transcribe(fresh, read_pcm("s01.wav")) == "please call me back tomorrow morning"

    run_with(pool, scenario)
