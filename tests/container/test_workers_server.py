"""The speech model's worker processes behind the real server: crash, drain and limits across workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.container.conftest import log_lines
from tests.support.processes import (
    CONTAINER_DIR,
    REPO_ROOT,
    RunningProcess,
    free_port,
    http_status,
    model_server,
    start_process,
    wait_for_ping,
    wait_until,
)

SPEECH = REPO_ROOT / "tests" / "data" / "speech"
TIMEOUT = 120.0  # decoding shares 2 busy cores
MAX_SESSIONS = 3
ENV = {
    "MODELS": "transcribe",
    "TRANSCRIBE_WORKERS": "2",
    "TRANSCRIBE_WARM_DECODERS": "1",  # start fast; a worker makes more when it needs them
    "TRANSCRIBE_MAX_SESSIONS": str(MAX_SESSIONS),
    "TRANSCRIBE_IDLE_TIMEOUT_SECONDS": "120",  # a session waits while others decode on busy cores
}
FRAME = 640
#: The image's server is the container's PID 1, so orphans become its children. A child subreaper is
#: adopted by orphans the same way, and keeps the setting across exec: the server is started so.
AS_INIT = (
    "import ctypes, os, sys; PR_SET_CHILD_SUBREAPER = 36; "
    "ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'model_server', 'serve'])"
)


def read_pcm(name: str) -> bytes:
    with wave.open(str(SPEECH / name), "rb") as clip:
        return clip.readframes(clip.getnframes())


def children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def worker_pids(server: RunningProcess) -> list[int]:
    """The server's workers: the children of its one child, the fork server."""
    (fork_server,) = children(server.process.pid)
    return children(fork_server)


def fork_server_and_workers(server: RunningProcess) -> tuple[int | None, list[int]]:
    """The server's one child and its children; (None, []) while the fork server is being replaced."""
    try:
        (fork_server,) = children(server.process.pid)
        return fork_server, children(fork_server)
    except (ValueError, FileNotFoundError):  # no child, or it exited while being read
        return None, []


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a container's init may not reap orphans at once)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def listen_url(server: RunningProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/listen?encoding=linear16&sample_rate=16000"


def open_listen(url: str) -> Any:
    # No client pings: a session answers them between its messages, and on a busy machine decoding a
    # sentence can take longer than the ping timeout.
    return connect(
        url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=None, max_size=None, ping_interval=None
    )


async def send_audio(ws: ClientConnection, pcm: bytes) -> None:
    for offset in range(0, len(pcm), FRAME):
        await ws.send(pcm[offset : offset + FRAME])


async def final_words(ws: ClientConnection, *, until_finalize: bool) -> str:
    """The words of the final results up to the close, or up to the one that answers Finalize."""
    words = []
    async with asyncio.timeout(TIMEOUT):
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "Results" and message["is_final"]:
                words.append(message["channel"]["alternatives"][0]["transcript"])
                if until_finalize and message["from_finalize"]:
                    return " ".join(filter(None, words))
    if until_finalize:
        raise AssertionError(f"closed before the Finalize result: {ws.close_code} {ws.close_reason}")
    return " ".join(filter(None, words))


async def finalized(ws: ClientConnection) -> str:
    """Send Finalize; the words of the results up to the one that answers it."""
    await ws.send(json.dumps({"type": "Finalize"}))
    return await final_words(ws, until_finalize=True)


async def close_stream(ws: ClientConnection) -> tuple[str, int | None]:
    """Send CloseStream; the final words and the close code."""
    await ws.send(json.dumps({"type": "CloseStream"}))
    return await final_words(ws, until_finalize=False), ws.close_code


@pytest.fixture(scope="module")
def server() -> Iterator[RunningProcess]:
    with model_server(env=ENV) as running:
        yield running


def test_the_server_decodes_in_as_many_workers_as_asked(server: RunningProcess) -> None:
    wait_until(lambda: len(worker_pids(server)) == 2, timeout=TIMEOUT, what="two workers")


def test_a_killed_worker_ends_only_its_session_with_1011_and_a_new_worker_serves(
    server: RunningProcess,
) -> None:
    async def scenario() -> None:
        async with open_listen(listen_url(server)) as first, open_listen(listen_url(server)) as second:
            # Audio opens each session's stream: one on each worker (the least busy one is chosen).
            await send_audio(first, read_pcm("s01.wav"))
            assert await finalized(first) == "please call me back tomorrow morning"
            await send_audio(second, read_pcm("s02.wav"))
            assert await finalized(second) == "the weather is nice today"
            before = worker_pids(server)
            os.kill(before[0], signal.SIGKILL)
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(ws.wait_closed()) for ws in (first, second)],
                timeout=TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert len(done) == 1
            ended, survivor = (first, second) if first.close_code is not None else (second, first)
            assert ended.close_code == 1011
            assert ended.close_reason.startswith("transcription worker") and "died" in ended.close_reason
            await send_audio(survivor, read_pcm("s02.wav"))
            assert await close_stream(survivor) == ("the weather is nice today", 1000)
        wait_until(
            lambda: len(worker_pids(server)) == 2 and before[0] not in worker_pids(server),
            timeout=TIMEOUT,
            what="a replacement worker",
        )
        async with open_listen(listen_url(server)) as again:
            await send_audio(again, read_pcm("s01.wav"))
            assert await close_stream(again) == ("please call me back tomorrow morning", 1000)

    asyncio.run(scenario())
    assert '"event": "worker_lost"' in server.output()


def test_the_session_limit_counts_sessions_on_every_worker(server: RunningProcess) -> None:
    async def scenario() -> None:
        sessions = [await open_listen(listen_url(server)) for _ in range(MAX_SESSIONS)]
        for ws in sessions:
            await send_audio(ws, read_pcm("s02.wav")[: 32000 * 1])
        async with open_listen(listen_url(server)) as refused:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(refused.recv(), TIMEOUT)
            assert refused.close_code == 1013
        for ws in sessions:
            await ws.close()

    asyncio.run(scenario())


def test_drain_lets_sessions_on_several_workers_finish_then_everything_exits() -> None:
    with model_server(env={**ENV, "DRAIN_GRACE_SECONDS": str(TIMEOUT)}) as server:
        processes = [server.process.pid, *children(server.process.pid)]
        wait_until(lambda: len(worker_pids(server)) == 2, timeout=TIMEOUT, what="two workers")
        processes += worker_pids(server)

        async def scenario() -> list[tuple[str, int | None]]:
            async with open_listen(listen_url(server)) as first, open_listen(listen_url(server)) as second:
                await send_audio(first, read_pcm("s01.wav")[: 32000 * 2])
                await send_audio(second, read_pcm("s02.wav")[: 32000 * 2])
                server.send_signal(signal.SIGTERM)
                # Draining: the open sessions go on to the end of their audio, on both workers.
                await send_audio(first, read_pcm("s01.wav")[32000 * 2 :])
                await send_audio(second, read_pcm("s02.wav")[32000 * 2 :])
                return list(await asyncio.gather(close_stream(first), close_stream(second)))

        assert asyncio.run(scenario()) == [
            ("please call me back tomorrow morning", 1000),
            ("the weather is nice today", 1000),
        ]
        assert server.wait(TIMEOUT) == 0
        wait_until(
            lambda: not any(running(pid) for pid in processes),
            timeout=TIMEOUT,
            what="the fork server and workers to exit",
        )


def test_a_killed_fork_server_is_replaced_while_sessions_go_on_on_its_workers() -> None:
    with model_server(env=ENV) as server:
        wait_until(lambda: len(worker_pids(server)) == 2, timeout=TIMEOUT, what="two workers")
        old_fork_server, old_workers = fork_server_and_workers(server)
        assert old_fork_server is not None

        def new_generation() -> bool:
            fork_server, workers = fork_server_and_workers(server)
            return fork_server not in (None, old_fork_server) and len(workers) == 2

        async def scenario() -> list[int]:
            async with (
                open_listen(listen_url(server)) as streaming,
                open_listen(listen_url(server)) as lingering,
            ):
                # Audio opens each session's stream: one on each of the fork server's workers.
                await send_audio(streaming, read_pcm("s01.wav"))
                assert await finalized(streaming) == "please call me back tomorrow morning"
                await send_audio(lingering, read_pcm("s02.wav"))
                assert await finalized(lingering) == "the weather is nice today"
                os.kill(old_fork_server, signal.SIGKILL)
                # The session goes on on its worker while a new fork server loads.
                await send_audio(streaming, read_pcm("s02.wav"))
                # Well within pytest's timeout, so that a missing restart fails with this message.
                await asyncio.to_thread(
                    wait_until, new_generation, timeout=TIMEOUT / 2, what="a new fork server with two workers"
                )
                assert http_status(f"{server.base_url}/ping") == 200
                assert await close_stream(streaming) == ("the weather is nice today", 1000)
                # Retired, the old worker whose last session closed exits; the other serves on.
                await asyncio.to_thread(
                    wait_until,
                    lambda: sum(running(pid) for pid in old_workers) == 1,
                    timeout=TIMEOUT,
                    what="the old worker without sessions to exit",
                )
                await send_audio(lingering, read_pcm("s01.wav"))
                assert await finalized(lingering) == "please call me back tomorrow morning"
                # The new fork server replaces its workers: kill both, and a new session is served by
                # one of their replacements.
                _, new_workers = fork_server_and_workers(server)
                for pid in new_workers:
                    os.kill(pid, signal.SIGKILL)
                await asyncio.to_thread(
                    wait_until,
                    lambda: (
                        len(workers := fork_server_and_workers(server)[1]) == 2
                        and set(new_workers).isdisjoint(workers)
                    ),
                    timeout=TIMEOUT,
                    what="two replacement workers",
                )
                async with open_listen(listen_url(server)) as again:
                    await send_audio(again, read_pcm("s01.wav"))
                    assert await close_stream(again) == ("please call me back tomorrow morning", 1000)
                assert http_status(f"{server.base_url}/ping") == 200
                fork_server, workers = fork_server_and_workers(server)
                retired = [pid for pid in old_workers if running(pid)]
                # The server dies with a session open on a retired worker: nothing may be left running.
                server.process.kill()
                return [pid for pid in (fork_server, *workers, *retired) if pid is not None]

        processes = asyncio.run(scenario())
        assert len(processes) == 4
        wait_until(
            lambda: not any(running(pid) for pid in processes),
            timeout=TIMEOUT,
            what="the fork server and every worker to exit with the server",
        )
        events = [line.get("event") for line in log_lines(server)]
        assert {"fork_server_exit", "fork_server_ready", "worker_retired"} <= set(events)
        assert "fork_server_start_failed" not in events


def test_the_server_as_the_containers_init_reaps_the_dead_fork_servers_workers() -> None:
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", **ENV}
    server = start_process([sys.executable, "-c", AS_INIT], port=port, cwd=CONTAINER_DIR, env=env)
    try:
        wait_for_ping(server)
        wait_until(lambda: len(fork_server_and_workers(server)[1]) == 2, timeout=TIMEOUT, what="two workers")
        old_fork_server, old_workers = fork_server_and_workers(server)
        assert old_fork_server is not None
        os.kill(old_fork_server, signal.SIGKILL)
        # Its workers become the server's children; retired when the new fork server's workers join,
        # they exit and are reaped (a zombie would keep its /proc entry).
        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in old_workers),
            timeout=TIMEOUT / 2,
            what=f"the old workers {old_workers} to exit and be reaped",
        )
        fork_server, workers = fork_server_and_workers(server)
        assert fork_server not in (None, old_fork_server) and len(workers) == 2

        async def session() -> tuple[str, int | None]:
            async with open_listen(listen_url(server)) as ws:
                await send_audio(ws, read_pcm("s02.wav"))
                return await close_stream(ws)

        # No session had started, so the new workers waited to be taken over: the first one serves.
        assert asyncio.run(session()) == ("the weather is nice today", 1000)
        server.send_signal(signal.SIGTERM)
        assert server.wait(TIMEOUT) == 0
        wait_until(
            lambda: not any(running(pid) for pid in (fork_server, *workers) if pid is not None),
            timeout=TIMEOUT,
            what="the new fork server and its workers to exit with the server",
        )
    finally:
        server.stop()
