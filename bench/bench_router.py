"""Benchmark the local endpoint's own overhead: round-trip latency through it vs straight to the container.

Starts the model container (echo model) pinned to one core and ``bidistream endpoint`` in front of it
pinned to the other; the clients share the endpoint's core. In the same run, in alternating blocks so
drift hits every path equally, it measures the round trip of one small UTF8 message:

* direct: a WebSocket client to the container (what the sidecar does);
* Python SDK: aws-sdk-sagemaker-runtime-http2 over CRT (HTTP/2 + event stream + SigV4 event signing)
  to the local endpoint, which forwards it over its own WebSocket to the same container;
* JavaScript SDK: the same through the AWS SDK for JavaScript v3's NodeHttp2Handler and event signer
  (``tests/e2e/js/bidi_client.js`` under ``node``, one process per block, timed inside it).

Each SDK's difference to direct is what the endpoint adds *plus* that SDK client's own cost per
message (event signing and encoding; for Python the CRT thread hop), i.e. what a client of this
emulator pays over a raw WebSocket. It also reports one large-part round trip (3 MiB binary) through
the endpoint with the Python SDK.

    .venv/bin/python bench/bench_router.py [--rounds 10 --per-round 100 --size 64]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import statistics
import subprocess
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
JS_CLIENT = REPO_ROOT / "tests" / "e2e" / "js" / "bidi_client.js"


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


def js_round_trips(
    target: StreamTarget, credentials: dict[str, str], message: str, count: int
) -> list[float]:
    """``count`` round trips on one stream of the JavaScript SDK client, each part sent once the
    previous echo arrived; times taken inside node (startup excluded)."""
    data = base64.b64encode(message.encode()).decode()
    script = {
        "endpoint": target.uri,
        "region": target.region,
        "endpointName": target.endpoint_name,
        "parts": [{"data": data, "dataType": "UTF8", "afterResponses": index} for index in range(count)],
        "endInputAfter": count,
    }
    node = shutil.which("node")
    assert node is not None, "node (v20) must be on PATH"
    completed = subprocess.run(
        [node, str(JS_CLIENT)],
        input=json.dumps(script),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **credentials, "NODE_EXTRA_CA_CERTS": str(target.ca_file)},
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the JavaScript client failed: {completed.stdout}{completed.stderr}")
    result = json.loads(completed.stdout.splitlines()[-1])
    marks = list(zip(result["timeline"], result["times"], strict=True))
    sent = [time for what, time in marks if what == "part sent"]
    received = [time for what, time in marks if what == "part received"]
    assert len(sent) == len(received) == count, result.get("failure") or result.get("streamError")
    return [(done - started) / 1000 for started, done in zip(sent, received, strict=True)]


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

        async def measure() -> tuple[list[float], list[float], list[float], float]:
            await direct_round_trips(direct_url, message, 20)  # warm-up every path
            await endpoint_round_trips(target, message, 20)
            await asyncio.to_thread(js_round_trips, target, credentials, message, 20)
            direct: list[float] = []
            python_sdk: list[float] = []
            js_sdk: list[float] = []
            for _ in range(args.rounds):
                direct += await direct_round_trips(direct_url, message, args.per_round)
                python_sdk += await endpoint_round_trips(target, message, args.per_round)
                js_sdk += await asyncio.to_thread(
                    js_round_trips, target, credentials, message, args.per_round
                )
            return direct, python_sdk, js_sdk, await large_round_trip(target)

        direct, python_sdk, js_sdk, large = asyncio.run(measure())
    finally:
        endpoint.stop()
        container.stop()
        workdir.cleanup()

    count = args.rounds * args.per_round
    print(f"round trip of one {args.size}-byte UTF8 message, {count} per path, echo model, loopback")
    print(f"  container on CPU {args.container_cpu}; endpoint and clients on CPU {args.endpoint_cpu}")
    # Other work on the machine shows up in p99 first; say how busy it was.
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rows = [
        ("direct WebSocket -> container", direct),
        ("Python SDK (CRT) -> endpoint -> container", python_sdk),
        ("JS SDK (Node HTTP/2) -> endpoint -> container", js_sdk),
    ]
    for name, samples in rows:
        print(
            f"  {name:46} p50 {1000 * statistics.median(samples):7.3f} ms"
            f"   p99 {1000 * percentile(samples, 0.99):7.3f} ms"
            f"   mean {1000 * statistics.fmean(samples):7.3f} ms"
        )
    for name, samples in rows[1:]:
        p50 = statistics.median(samples) - statistics.median(direct)
        p99 = percentile(samples, 0.99) - percentile(direct, 0.99)
        added = f"added: endpoint + {name.split(' ->')[0]}"
        print(f"  {added:46} p50 {1000 * p50:+7.3f} ms   p99 {1000 * p99:+7.3f} ms")
    print(f"  3 MiB binary part round trip through the endpoint (Python SDK): {1000 * large:.0f} ms")


if __name__ == "__main__":
    main()
