"""Benchmark the local endpoint's own overhead: round-trip latency through it vs straight to the container.

Starts the model container (echo model) pinned to one core and ``bidistream endpoint`` in front of it
pinned to the other; this process (the clients) shares the endpoint's core. In the same run, in
alternating blocks so drift hits both equally, it measures the round trip of one small UTF8 message:

* direct: a WebSocket client to the container (what the sidecar does);
* via the endpoint: the real SDK (CRT HTTP/2 + event stream + SigV4 event signing) to the local
  endpoint, which forwards it over its own WebSocket to the same container.

The difference is what the endpoint adds *plus* the SDK client's own cost per message (event signing
and encoding, the CRT thread hop), i.e. what a client of this emulator pays over a raw WebSocket.
It also reports one large-part round trip (3 MiB binary) through the endpoint.

    .venv/bin/python bench/bench_router.py [--rounds 10 --per-round 100 --size 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bidistream.client import Part, StreamTarget, Timeouts, open_stream
from tests.support.processes import (
    CONTAINER_DIR,
    REPO_ROOT,
    RunningProcess,
    free_port,
    start_process,
    wait_for_ping,
    wait_until,
)

ECHO_PATH = "/invocations-bidirectional-stream"
LARGE_PART = 3 * 1024 * 1024


def start_container(cpu: str) -> RunningProcess:
    port = free_port()
    server = start_process(
        ["taskset", "-c", cpu, sys.executable, "-m", "model_server", "serve"],
        port=port,
        cwd=CONTAINER_DIR,
        env={"PORT": str(port), "HOST": "127.0.0.1", "MODELS": "echo", "LOG_LEVEL": "WARNING"},
    )
    wait_for_ping(server)
    return server


def start_endpoint(cpu: str, model_url: str, cert_dir: Path, credentials: dict[str, str]) -> RunningProcess:
    port = free_port()
    endpoint = start_process(
        ["taskset", "-c", cpu, sys.executable, "-m", "bidistream", "endpoint", "--port", str(port),
         "--model-url", model_url, "--cert-dir", str(cert_dir)],
        port=port,
        cwd=REPO_ROOT,
        env=credentials,
    )  # fmt: skip
    wait_until(lambda: "ready: " in endpoint.output(), timeout=30, what="the local endpoint")
    return endpoint


async def direct_round_trips(url: str, message: str, count: int) -> list[float]:
    samples = []
    async with connect(url, compression=None) as websocket:
        for _ in range(count):
            started = time.perf_counter()
            await websocket.send(message)
            answer = await websocket.recv()
            samples.append(time.perf_counter() - started)
            assert answer == message
    return samples


async def endpoint_round_trips(target: StreamTarget, message: str, count: int) -> list[float]:
    samples = []
    async with open_stream(target, Timeouts(open=15, first_response=15, idle=15)) as stream:
        for _ in range(count):
            started = time.perf_counter()
            await stream.send(Part.text(message))
            answer = await stream.receive()
            samples.append(time.perf_counter() - started)
            assert answer is not None and answer.data == message.encode()
        await stream.close_input()
    return samples


async def large_round_trip(target: StreamTarget) -> float:
    payload = secrets.token_bytes(LARGE_PART)
    async with open_stream(target, Timeouts(open=15, first_response=60, idle=60)) as stream:
        started = time.perf_counter()
        await stream.send(Part.binary(payload))
        answer = await stream.receive()
        elapsed = time.perf_counter() - started
        assert answer is not None and answer.data == payload
        await stream.close_input()
    return elapsed


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks per path")
    parser.add_argument("--per-round", type=int, default=100, help="round trips per block")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes (UTF8)")
    parser.add_argument("--container-cpu", default="0")
    parser.add_argument("--endpoint-cpu", default="1")
    args = parser.parse_args()

    os.sched_setaffinity(0, {int(args.endpoint_cpu)})
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIDBENCH" + secrets.token_hex(4).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(credentials)
    message = "x" * args.size
    container = start_container(args.container_cpu)
    workdir = tempfile.TemporaryDirectory(prefix="bidistream-bench-")
    cert_dir = Path(workdir.name)
    endpoint = start_endpoint(args.endpoint_cpu, container.base_url, cert_dir, credentials)
    try:
        port = int(endpoint.port)
        target = StreamTarget(
            "bench", "us-east-1", endpoint_uri=f"https://127.0.0.1:{port}", ca_file=str(cert_dir / "ca.pem")
        )
        direct_url = f"ws://127.0.0.1:{container.port}{ECHO_PATH}"

        async def measure() -> tuple[list[float], list[float], float]:
            await direct_round_trips(direct_url, message, 20)  # warm-up both paths
            await endpoint_round_trips(target, message, 20)
            direct: list[float] = []
            via_endpoint: list[float] = []
            for _ in range(args.rounds):
                direct += await direct_round_trips(direct_url, message, args.per_round)
                via_endpoint += await endpoint_round_trips(target, message, args.per_round)
            return direct, via_endpoint, await large_round_trip(target)

        direct, via_endpoint, large = asyncio.run(measure())
    finally:
        endpoint.stop()
        container.stop()
        workdir.cleanup()

    count = args.rounds * args.per_round
    print(f"round trip of one {args.size}-byte UTF8 message, {count} per path, echo model, loopback")
    print(f"  container on CPU {args.container_cpu}; endpoint and clients on CPU {args.endpoint_cpu}")
    # Other work on the machine shows up in p99 first; say how busy it was.
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rows = [("direct WebSocket -> container", direct), ("SDK -> local endpoint -> container", via_endpoint)]
    for name, samples in rows:
        print(
            f"  {name:36} p50 {1000 * statistics.median(samples):7.3f} ms"
            f"   p99 {1000 * percentile(samples, 0.99):7.3f} ms"
            f"   mean {1000 * statistics.fmean(samples):7.3f} ms"
        )
    p50 = statistics.median(via_endpoint) - statistics.median(direct)
    p99 = percentile(via_endpoint, 0.99) - percentile(direct, 0.99)
    print(f"  {'added by endpoint + SDK client':36} p50 {1000 * p50:+7.3f} ms   p99 {1000 * p99:+7.3f} ms")
    print(f"  3 MiB binary part round trip through the endpoint: {1000 * large:.0f} ms")


if __name__ == "__main__":
    main()
