"""Benchmark the model container's server: echo round trips and paced live-audio capacity.

Starts ``python -m model_server serve`` (the image's entry point) pinned to one core and drives it from
this process pinned to another, over WebSocket on loopback. Prints one table:

* echo round trips per second, 1 KB binary messages, 1 session and 64 sessions (each session sends
  the next message when the previous echo arrived);
* paced live-audio capacity: sessions of 640-byte binary frames at 50 frames/s (16 kHz 16-bit mono
  in 20 ms frames), the most sessions one server process sustains with p99 round trip < 100 ms and
  no frame lost or reordered. The search is bounded (doubling, then bisection);
* the echo path's overhead over the library: the same paced load (100 sessions) against our server
  (every feature on: limits, idle and send timeouts, accounting, the session log line) and against a
  bare aiohttp WebSocket echo server on the same core, in alternating rounds of one run; server CPU
  per echoed frame for each, and their ratio.

The load generator's own CPU share is printed next to each figure: if it nears 100 %, the figure
measures the generator, not the server.

    .venv/bin/python bench/bench_server.py                 # start the server, run everything (~2 min)
    .venv/bin/python bench/bench_server.py --only overhead # just ours vs bare aiohttp (~40 s)
    .venv/bin/python bench/bench_server.py --url ws://127.0.0.1:8080/invocations-bidirectional-stream
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import CONTAINER_DIR, RunningProcess, free_port, start_process, wait_for_ping

ECHO_PATH = "/invocations-bidirectional-stream"
ECHO_MESSAGE_BYTES = 1024
AUDIO_FRAME_BYTES = 640  # 20 ms of 16 kHz, 16-bit mono PCM
AUDIO_FRAMES_PER_SECOND = 50
P99_LIMIT_MS = 100.0
HEADER = struct.Struct("!QQ")  # sequence number, send time in ns
PHASES = 10  # send clocks per 20 ms interval
LOSS_AFTER = 2.0  # seconds
OVERHEAD_LIMIT = 1.25  # our server CPU per frame over the bare library's, at most

Level = tuple[int, dict[str, float]]  # sessions, the paced run's figures


@dataclass
class CpuClock:
    """CPU seconds used by a process (from /proc) or by this process."""

    pid: int | None = None

    def seconds(self) -> float:
        if self.pid is None:
            return time.process_time()
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measurement:
    wall_seconds: float
    server_cpu: float | None
    client_cpu: float


@contextmanager
def measured(server: CpuClock | None) -> Iterator[list[Measurement]]:
    """Yield a one-element list that holds the wall time and CPU shares of the block when it ends."""
    result: list[Measurement] = []
    client = CpuClock()
    start_wall, start_client = time.monotonic(), client.seconds()
    start_server = server.seconds() if server else 0.0
    yield result
    wall = time.monotonic() - start_wall
    server_share = (server.seconds() - start_server) / wall if server else None
    result.append(Measurement(wall, server_share, (client.seconds() - start_client) / wall))


def cpu_per_message(measurement: Measurement, messages: int) -> float:
    """Server CPU microseconds per echoed message: unlike throughput, barely moved by other load."""
    if measurement.server_cpu is None or not messages:
        return float("nan")
    return measurement.server_cpu * measurement.wall_seconds / messages * 1e6


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def client_session() -> aiohttp.ClientSession:
    # limit=0: a WebSocket holds its connection for the whole session, and the default pool of 100
    # would make session 101 wait forever.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def connect_all(
    http: aiohttp.ClientSession, url: str, count: int
) -> list[aiohttp.ClientWebSocketResponse]:
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    for start in range(0, count, 64):  # in batches, so the accept backlog never overflows
        batch = [
            http.ws_connect(url, compress=0, autoping=True) for _ in range(start, min(count, start + 64))
        ]
        sockets.extend(await asyncio.gather(*batch))
    return sockets


async def echo_round_trips(
    url: str, sessions: int, seconds: float, server: CpuClock | None
) -> dict[str, float]:
    """Closed loop: each session sends 1 KB, waits for the same bytes back, repeats."""
    payload = os.urandom(ECHO_MESSAGE_BYTES)
    latencies: list[float] = []
    async with client_session() as http:
        sockets = await connect_all(http, url, sessions)
        deadline = time.monotonic() + seconds

        async def run(ws: aiohttp.ClientWebSocketResponse) -> int:
            done = 0
            while time.monotonic() < deadline:
                sent = time.perf_counter()
                await ws.send_bytes(payload)
                message = await ws.receive()
                if message.type is not aiohttp.WSMsgType.BINARY or message.data != payload:
                    raise RuntimeError(f"echo mismatch: {message.type} {message.extra}")
                latencies.append(time.perf_counter() - sent)
                done += 1
            return done

        with measured(server) as cpu:
            counts = await asyncio.gather(*(run(ws) for ws in sockets))
        await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "rps": sum(counts) / cpu[0].wall_seconds,
        "server_us": cpu_per_message(cpu[0], sum(counts)),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "server_cpu": cpu[0].server_cpu or float("nan"),
        "client_cpu": cpu[0].client_cpu,
    }


async def paced_audio(url: str, sessions: int, seconds: float, server: CpuClock | None) -> dict[str, float]:
    """Open loop: every session sends a 640-byte frame every 20 ms on a fixed schedule."""
    frames = int(seconds * AUDIO_FRAMES_PER_SECOND)
    interval = 1.0 / AUDIO_FRAMES_PER_SECOND
    padding = bytes(AUDIO_FRAME_BYTES - HEADER.size)
    latencies: list[float] = []
    received = 0
    out_of_order = 0
    async with client_session() as http:
        sockets = await connect_all(http, url, sessions)
        # Sessions start in PHASES groups spread over one interval, as independent callers would; one
        # timer per group (not per session) keeps the generator's own cost down.
        groups = [sockets[phase::PHASES] for phase in range(PHASES)]

        async def send(group: list[aiohttp.ClientWebSocketResponse], start: float) -> None:
            for sequence in range(frames):
                delay = start + sequence * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                for ws in group:
                    await ws.send_bytes(HEADER.pack(sequence, time.perf_counter_ns()) + padding)

        async def receive(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal received, out_of_order
            expected = 0
            while expected < frames:
                message = await ws.receive()
                if message.type is not aiohttp.WSMsgType.BINARY:
                    return
                sequence, sent_ns = HEADER.unpack_from(message.data)
                latencies.append((time.perf_counter_ns() - sent_ns) / 1e9)
                received += 1
                out_of_order += sequence != expected
                expected = sequence + 1

        with measured(server) as cpu:
            receivers = [asyncio.create_task(receive(ws)) for ws in sockets]
            first = time.monotonic()
            await asyncio.gather(
                *(send(group, first + interval * phase / PHASES) for phase, group in enumerate(groups))
            )
            # A frame that has not come back LOSS_AFTER seconds after the last one was sent is lost.
            _, late = await asyncio.wait(receivers, timeout=LOSS_AFTER)
            for task in late:
                task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "lost": float(frames * sessions - received + out_of_order),
        "server_us": cpu_per_message(cpu[0], received),
        "server_cpu": cpu[0].server_cpu or float("nan"),
        "client_cpu": cpu[0].client_cpu,
    }


def sustained(result: dict[str, float]) -> bool:
    return result["lost"] == 0 and result["p99_ms"] < P99_LIMIT_MS


async def capacity_search(
    url: str, seconds: float, start: int, ceiling: int, steps: int, server: CpuClock | None
) -> tuple[int, list[Level]]:
    """Double from ``start`` until a level fails (or ``ceiling``), then bisect; at most ``steps`` runs."""
    tried: list[Level] = []
    best, failed = 0, ceiling + 1
    level = start
    for _ in range(steps):
        result = await paced_audio(url, level, seconds, server)
        tried.append((level, result))
        print(
            f"  paced {level:5d} sessions: p99 {result['p99_ms']:7.1f} ms, lost {result['lost']:.0f}",
            flush=True,
        )
        if sustained(result):
            best = level
        else:
            failed = level
        if failed > ceiling:
            if level >= ceiling:
                break
            level = min(ceiling, level * 2)
        else:
            if failed - best <= max(2, best // 20):
                break
            level = (best + failed) // 2
    return best, tried


def start_server(cpu: str, env: dict[str, str]) -> RunningProcess:
    """The image's entry point, pinned to ``cpu``, with only the echo model."""
    port = free_port()
    server = start_process(
        ["taskset", "-c", cpu, sys.executable, "-m", "model_server", "serve"],
        port=port,
        cwd=CONTAINER_DIR,
        env={"PORT": str(port), "HOST": "127.0.0.1", "MODELS": "echo", **env},
    )
    wait_for_ping(server)
    return server


def bare_echo_application() -> web.Application:
    """The floor: aiohttp's own WebSocket echo with its defaults, nothing of ours on the path."""

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
            elif message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get(ECHO_PATH, echo)
    app.router.add_get("/ping", ping)
    return app


def start_bare_server(cpu: str) -> RunningProcess:
    port = free_port()
    server = start_process(
        ["taskset", "-c", cpu, sys.executable, __file__, "--serve-bare-echo", str(port)], port=port
    )
    wait_for_ping(server)
    return server


async def echo_overhead(
    ours: tuple[str, CpuClock], bare: tuple[str, CpuClock], sessions: int, seconds: float, rounds: int
) -> dict[str, list[float]]:
    """Server CPU µs per echoed frame under the same paced load, alternating ours and bare each round."""
    figures: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(rounds):
        for name, (url, clock) in (("ours", ours), ("bare", bare)):
            result = await paced_audio(url, sessions, seconds, clock)
            if result["lost"]:
                raise RuntimeError(f"{name}: {result['lost']:.0f} frames lost at {sessions} sessions")
            figures[name].append(result["server_us"])
            print(
                f"  {name}: {result['server_us']:6.1f} µs/frame, p99 {result['p99_ms']:6.1f} ms, "
                f"server CPU {result['server_cpu']:.0%}",
                flush=True,
            )
    return figures


def print_overhead(figures: dict[str, list[float]], sessions: int) -> None:
    ours, bare = statistics.median(figures["ours"]), statistics.median(figures["bare"])
    ratios = [o / b for o, b in zip(figures["ours"], figures["bare"], strict=True)]
    print(
        f"echo overhead, paced audio 640 B x 50/s, {sessions} sessions (median of {len(ratios)} rounds): "
        f"ours {ours:.1f} µs/frame, bare aiohttp {bare:.1f} µs/frame, ratio {ours / bare:.2f} "
        f"(per round {', '.join(f'{r:.2f}' for r in ratios)}; limit {OVERHEAD_LIMIT:.2f})"
    )


def print_table(one: dict[str, float], many: dict[str, float], best: int, tried: list[Level]) -> None:
    header = ("benchmark", "result", "p50 ms", "p99 ms", "server CPU", "server µs/msg", "loadgen CPU")
    print(
        f"{header[0]:38} {header[1]:>22} {header[2]:>8} {header[3]:>8} {header[4]:>11} {header[5]:>14} "
        f"{header[6]:>12}"
    )

    def row(name: str, figure: str, result: dict[str, float] | None) -> None:
        if result is None:
            print(f"{name:38} {figure:>22}")
            return
        print(
            f"{name:38} {figure:>22} {result['p50_ms']:8.2f} {result['p99_ms']:8.2f} "
            f"{result['server_cpu']:11.0%} {result['server_us']:14.1f} {result['client_cpu']:12.0%}"
        )

    row("echo 1 KB, 1 session", f"{one['rps']:,.0f} round trips/s", one)
    row("echo 1 KB, 64 sessions", f"{many['rps']:,.0f} round trips/s", many)
    row(
        f"paced audio 640 B x 50/s, p99<{P99_LIMIT_MS:.0f} ms",
        f"{best} sessions" if best else "none sustained",
        dict(tried).get(best),
    )
    levels = ", ".join(f"{level}{'' if sustained(result) else ' (failed)'}" for level, result in tried)
    print(f"capacity levels tried: {levels}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="benchmark a server that is already running instead of starting one")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, to report its CPU")
    parser.add_argument("--server-cpu", default="0", help="core for the server process (taskset -c)")
    parser.add_argument("--client-cpu", type=int, default=1, help="core for this load generator")
    parser.add_argument("--only", choices=("capacity", "overhead"), help="run one part (default: both)")
    parser.add_argument("--echo-seconds", type=float, default=5.0)
    parser.add_argument("--paced-seconds", type=float, default=5.0, help="length of each capacity level")
    parser.add_argument("--paced-start", type=int, default=50, help="first level of the capacity search")
    parser.add_argument("--paced-ceiling", type=int, default=1600, help="highest level the search tries")
    parser.add_argument("--paced-steps", type=int, default=8, help="most levels the search tries")
    parser.add_argument("--overhead-sessions", type=int, default=100)
    parser.add_argument("--overhead-seconds", type=float, default=6.0, help="length of each overhead run")
    parser.add_argument("--overhead-rounds", type=int, default=3, help="alternating runs of ours and bare")
    parser.add_argument("--serve-bare-echo", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare_echo:
        web.run_app(bare_echo_application(), host="127.0.0.1", port=args.serve_bare_echo, print=None)
        return

    os.sched_setaffinity(0, {args.client_cpu})
    load_before = os.getloadavg()[0]
    servers: list[RunningProcess] = []
    if args.url:
        url, clock = args.url, CpuClock(args.server_pid) if args.server_pid else None
        print(f"server: {url}; load generator: core {args.client_cpu}")
    else:
        # The session limit must not cap the search.
        servers.append(start_server(args.server_cpu, {"MAX_SESSIONS": str(args.paced_ceiling + 64)}))
        url, clock = f"ws://127.0.0.1:{servers[0].port}{ECHO_PATH}", CpuClock(servers[0].process.pid)
        print(f"server: {url} on core {args.server_cpu}; load generator: core {args.client_cpu}")
    overhead: dict[str, list[float]] | None = None
    try:
        if args.only != "capacity":
            if clock is None:
                parser.error("the overhead part needs the server's CPU: pass --server-pid with --url")
            servers.append(start_bare_server(args.server_cpu))
            bare = (f"ws://127.0.0.1:{servers[-1].port}{ECHO_PATH}", CpuClock(servers[-1].process.pid))
            print(f"bare aiohttp echo server: {bare[0]} on core {args.server_cpu}")
            overhead = asyncio.run(
                echo_overhead(
                    (url, clock), bare, args.overhead_sessions, args.overhead_seconds, args.overhead_rounds
                )
            )
        if args.only != "overhead":
            one = asyncio.run(echo_round_trips(url, 1, args.echo_seconds, clock))
            many = asyncio.run(echo_round_trips(url, 64, args.echo_seconds, clock))
            best, tried = asyncio.run(
                capacity_search(
                    url, args.paced_seconds, args.paced_start, args.paced_ceiling, args.paced_steps, clock
                )
            )
    finally:
        for server in servers:
            server.stop()
    print()
    if args.only != "overhead":
        print_table(one, many, best, tried)
    if overhead is not None:
        print_overhead(overhead, args.overhead_sessions)
    # Other work on these cores shows as low CPU shares and high latencies: figures are then lower bounds.
    load_after = os.getloadavg()[0]
    print(f"1-minute load average: {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
