"""Benchmark of the speak model (v1/speak): latency, speed, capacity, memory, round-trip accuracy.

Prints:
1. first audio byte: from sending Speak + Flush (one short sentence) to the first binary frame,
   median and p90 over several sessions on one server (a real WebSocket client on loopback);
2. real-time factor: the server's CPU seconds per second of audio it sent, for a long text;
3. concurrent real-time sessions per core: the inverse of (2), i.e. audio seconds the server makes
   per CPU second, checked by running that many sessions at once and timing their audio;
4. memory per session: the server's RSS growth per open session that has spoken a sentence (measured
   first, on a fresh server);
5. round-trip word error rate: each evaluation sentence spoken by v1/speak and transcribed by
   v1/listen through the local SageMaker endpoint with the real SDK, per voice (skip with --no-wer).

Everything shares the machine's cores with whatever else runs: the load average is printed.

Usage: .venv/bin/python bench/bench_speak.py            (about 2-4 min on 2 cores, most of it WER)
       .venv/bin/python bench/bench_speak.py --no-wer
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "container")]

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from bidistream.client import StreamTarget  # noqa: E402
from tests.support.processes import (  # noqa: E402
    RunningProcess,
    free_port,
    model_server,
    start_process,
    wait_until,
)
from tests.support.voice_loop import round_trip  # noqa: E402
from tests.transcribe.wer import word_error_rate  # noqa: E402

SHORT = "Sure, I can help you with that."
LONG = " ".join(f"This is sentence number {n} of a longer answer from the agent." for n in range(1, 31))
RATE = 24000  # Deepgram's default, linear16
BYTES_PER_SECOND = RATE * 2
VOICES = ("aura-2-thalia-en", "aura-2-zeus-en", "aura-2-pandora-en", "aura-helios-en")


def clock_ticks(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def url(server: RunningProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/speak?model=aura-2-thalia-en"


async def say(ws: ClientConnection, text: str) -> tuple[float, int]:
    """Speak + Flush; (seconds to the first audio byte, audio bytes up to Flushed)."""
    start = time.perf_counter()
    await ws.send(json.dumps({"type": "Speak", "text": text}))
    await ws.send(json.dumps({"type": "Flush"}))
    first: float | None = None
    received = 0
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            first = first if first is not None else time.perf_counter() - start
            received += len(message)
        elif json.loads(message)["type"] == "Flushed":
            return first or 0.0, received


async def first_byte(server: RunningProcess, sessions: int = 15) -> list[float]:
    latencies = []
    for _ in range(sessions):
        async with connect(url(server), max_size=None) as ws:
            await ws.recv()  # Metadata
            latencies.append((await say(ws, SHORT))[0])
    return latencies


async def real_time_factor(server: RunningProcess) -> float:
    async with connect(url(server), max_size=None) as ws:
        await ws.recv()
        before = clock_ticks(server.process.pid)
        _, audio = await say(ws, LONG)
        used = clock_ticks(server.process.pid) - before
    return used / (audio / BYTES_PER_SECOND)


async def concurrent(server: RunningProcess, sessions: int) -> tuple[float, float]:
    """``sessions`` speak LONG at once: (slowest session's audio seconds per wall second, CPU used)."""

    async def one() -> float:
        async with connect(url(server), max_size=None) as ws:
            await ws.recv()
            start = time.perf_counter()
            _, audio = await say(ws, LONG)
            return (audio / BYTES_PER_SECOND) / (time.perf_counter() - start)

    before = clock_ticks(server.process.pid)
    speeds = await asyncio.gather(*(one() for _ in range(sessions)))
    return min(speeds), clock_ticks(server.process.pid) - before


async def memory_per_session(server: RunningProcess, sessions: int = 40) -> tuple[float, float]:
    idle = rss_mb(server.process.pid)
    sockets = []
    for _ in range(sessions):
        ws = await connect(url(server), max_size=None)
        await ws.recv()
        await say(ws, SHORT)
        sockets.append(ws)
    loaded = rss_mb(server.process.pid)
    for ws in sockets:
        await ws.close()
    return idle, (loaded - idle) / sessions


def round_trip_wer(server: RunningProcess, voices: tuple[str, ...]) -> dict[str, float]:
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIDBENCH" + secrets.token_hex(6).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(credentials)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    port = free_port()
    cert_dir = Path(f"/tmp/bench-speak-certs-{port}")
    argv = [
        sys.executable,
        "-m",
        "bidistream",
        "endpoint",
        "--port",
        str(port),
        "--model-url",
        server.base_url,
    ]
    endpoint = start_process([*argv, "--cert-dir", str(cert_dir)], port=port, env=credentials)
    sentences = [
        line.split("\t")[1]
        for line in (REPO / "tests" / "data" / "speech" / "transcripts.tsv").read_text().splitlines()
    ]
    try:
        wait_until(lambda: "ready: " in endpoint.output(), timeout=30, what="the local endpoint")
        target = StreamTarget(
            endpoint_name="bench",
            region="us-east-1",
            endpoint_uri=f"https://127.0.0.1:{port}",
            ca_file=str(cert_dir / "ca.pem"),
        )

        async def heard(voice: str) -> list[str]:
            return [await round_trip(target, text, voice=voice) for text in sentences]

        return {
            voice: word_error_rate(zip(sentences, asyncio.run(heard(voice)), strict=True)) for voice in voices
        }
    finally:
        endpoint.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-wer", action="store_true", help="skip the round trip through v1/listen")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared: figures are noisy)")
    with model_server(env={"MODELS": "speak" if args.no_wer else "speak,transcribe"}) as server:
        idle, per_session = asyncio.run(memory_per_session(server))  # first: nothing allocated yet
        print(
            f"memory: server RSS {idle:.0f} MB, +{per_session * 1024:.0f} kB per open session that has spoken"
        )
        latencies = asyncio.run(first_byte(server))
        print(
            f"first audio byte after Speak+Flush ({SHORT!r}, linear16 24 kHz, {len(latencies)} sessions): "
            f"median {statistics.median(latencies) * 1000:.0f} ms, "
            f"p90 {statistics.quantiles(latencies, n=10)[-1] * 1000:.0f} ms"
        )
        rtf = asyncio.run(real_time_factor(server))
        per_core = 1 / rtf
        print(f"RTF {rtf:.4f} (server CPU s per audio s): {per_core:.0f} real-time sessions per core")
        sessions = max(1, min(64, int(per_core * 0.8)))
        slowest, cpu = asyncio.run(concurrent(server, sessions))
        print(
            f"check: {sessions} sessions speaking at once: slowest got {slowest:.1f} s of audio per second "
            f"({'keeps up' if slowest >= 1 else 'falls behind'}), server used {cpu:.1f} CPU s"
        )
        if not args.no_wer:
            for voice, rate in round_trip_wer(server, VOICES).items():
                print(
                    f"round-trip WER ({voice}, 12 sentences, v1/speak -> v1/listen via the SDK): {rate:.3f}"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
