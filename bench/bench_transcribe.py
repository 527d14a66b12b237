"""Benchmark of the transcribe model (v1/listen): speed, capacity, latency and memory.

Prints, for the generated speech clips in tests/data/speech:
1. real-time factor of one stream (decoding CPU seconds per second of audio), in-process, on one core,
   and the word error rate of that decode; then the same for speech-like noise (the telephone clips
   decoded as the wrong G.711 law), the costliest audio per second a stream can send;
2. decoder memory per session (RSS growth per decoder), shared language model vs pocketsphinx's default;
   then the server's memory (PSS of the server, its fork server and workers) idle, with the first
   session and per extra session (sessions that have decoded a sentence and stay open);
3. latency at real time, one stream: from the first sample of speech (the voice's onset in the clip) to the
   first interim result, and from CloseStream (sent right after the last word, no trailing silence) to the
   final result;
4. the CPU one stream costs per second of audio (in the server process, and in all its processes,
   workers included), then how many concurrent real-time streams the server sustains with one worker
   and with the default (one per CPU): N sessions each sending audio at real time in 20 ms frames; a
   load is sustained when the p99 lag of final results (arrival minus the moment the audio of the
   utterance's end was sent) is under SUSTAIN_LAG_SECONDS. The search doubles from 2, then bisects.

The server and this load generator share the machine's cores (pinning the server to one core would
hide the workers). Other work on the machine skews every figure: the load average is printed.

Usage: .venv/bin/python bench/bench_transcribe.py   (about 5 min on 2 cores)
       .venv/bin/python bench/bench_transcribe.py --only capacity --workers 1 [--nice -10]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "container")]

from pocketsphinx import Decoder  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from model_server.models.transcribe.audio import AudioFormat, Encoding  # noqa: E402
from model_server.models.transcribe.convert import Converter  # noqa: E402
from model_server.models.transcribe.decoder import DecoderPool  # noqa: E402
from model_server.models.transcribe.recognizer import StreamRecognizer  # noqa: E402
from tests.support.processes import model_server  # noqa: E402
from tests.transcribe.wer import word_error_rate  # noqa: E402

SPEECH = REPO / "tests" / "data" / "speech"
TELEPHONY = REPO / "tests" / "data" / "telephony"
SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2
FRAME_SECONDS = 0.02  # what a live client sends per frame
TAIL_SILENCE_SECONDS = 1.0
SUSTAIN_LAG_SECONDS = 1.0
MAX_STREAMS = 64  # the capacity search stops here
SERVER_CORE, CLIENT_CORE = 0, 1  # for the in-process decoder figures


def transcripts() -> list[tuple[str, str]]:
    """(clip file name, what is said) for each clip of tests/data/speech."""
    pairs = []
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        pairs.append((name, text))
    return pairs


def clips() -> list[tuple[bytes, str]]:
    out = []
    for name, text in transcripts():
        with wave.open(str(SPEECH / name), "rb") as clip:
            out.append((clip.readframes(clip.getnframes()), text))
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def speech_like_noise() -> list[tuple[bytes, str]]:
    """The telephone clips decoded as the wrong G.711 law, at 16 kHz: noise the segmenter passes as
    speech, so the search runs on every frame with nothing to prune it to (the worst case per stream)."""
    noise = []
    for name, text in transcripts():
        converter = Converter(AudioFormat(encoding=Encoding.ALAW, sample_rate=8000), multichannel=False)
        law = (TELEPHONY / "mulaw-8k" / name).with_suffix(".ulaw").read_bytes()
        noise.append((b"".join([*converter.convert(law), *converter.flush()]), text))
    return noise


def bench_real_time_factor(
    pool: DecoderPool, data: list[tuple[bytes, str]], label: str = "one stream"
) -> float:
    os.sched_setaffinity(0, {SERVER_CORE})
    decoder = pool.acquire()
    audio = cpu = 0.0
    pairs = []
    for pcm, text in data:
        stream = StreamRecognizer(decoder, interim_results=True, endpointing_ms=300)
        started = time.process_time()
        results = []
        for offset in range(0, len(pcm), int(FRAME_SECONDS * BYTES_PER_SECOND)):
            results += stream.accept(pcm[offset : offset + int(FRAME_SECONDS * BYTES_PER_SECOND)])
        results += stream.finalize(from_finalize=False, closing=True)
        cpu += time.process_time() - started
        audio += len(pcm) / BYTES_PER_SECOND
        pool.release(decoder)
        pairs.append((text, " ".join(result.text for result in results if result.is_final)))
    print(
        f"real-time factor, {label + ':':<17} {cpu / audio:.3f}  ({cpu:.2f} CPU s for {audio:.1f} s of audio)"
    )
    print(f"  word error rate:                  {word_error_rate(pairs):.3f}  ({len(pairs)} sentences)")
    os.sched_setaffinity(0, {SERVER_CORE, CLIENT_CORE})
    return cpu / audio


def bench_memory(pool: DecoderPool) -> None:
    count = 4
    created, before = pool.created, rss_mb()
    shared = [pool.acquire() for _ in range(count + pool.idle)]
    per_shared = (rss_mb() - before) / (pool.created - created)
    before = rss_mb()
    default = [Decoder(loglevel="ERROR") for _ in range(2)]
    per_default = (rss_mb() - before) / len(default)
    print(f"decoder memory per session:         {per_shared:.0f} MB (shared language model)")
    print(f"  pocketsphinx default decoder:     {per_default:.0f} MB (its own language model)")
    del shared, default


async def play(url: str, pcm: bytes) -> tuple[float, float | None, float | None, float]:
    """Send ``pcm`` at real time, then CloseStream.

    Returns seconds from the first frame to: the last frame, the first interim with words, the last
    final with words, and the last message (the Metadata that follows the final results).
    """
    loop = asyncio.get_running_loop()
    first_interim: float | None = None
    last_final: float | None = None
    last_message = 0.0
    async with connect(url, compression=None, max_size=None, ping_interval=None) as ws:

        async def read() -> None:
            nonlocal first_interim, last_final, last_message
            async for raw in ws:
                now = loop.time()
                message = json.loads(raw)
                last_message = now
                if message.get("type") != "Results":
                    continue
                has_words = bool(message["channel"]["alternatives"][0]["transcript"])
                if not message["is_final"] and has_words and first_interim is None:
                    first_interim = now
                if message["is_final"] and has_words:
                    last_final = now

        reader = asyncio.create_task(read())
        frame = int(FRAME_SECONDS * BYTES_PER_SECOND)
        started = loop.time()
        for index, offset in enumerate(range(0, len(pcm), frame)):
            await asyncio.sleep(max(0.0, started + index * FRAME_SECONDS - loop.time()))
            await ws.send(pcm[offset : offset + frame])
        audio_end = loop.time()
        await ws.send(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(reader, 60)
    return (
        audio_end - started,
        first_interim and first_interim - started,
        last_final and last_final - started,
        (last_message - started),
    )


def speech_onset(pcm: bytes) -> float:
    """Seconds into a clip of its first sample louder than 2% of its peak: where the voice starts (espeak
    begins some clips with up to 55 ms of its own silence after the 0.5 s the clips are padded with)."""
    samples = array.array("h", pcm)
    threshold = 0.02 * max(abs(sample) for sample in samples)
    return next(index for index, sample in enumerate(samples) if abs(sample) > threshold) / SAMPLE_RATE


async def bench_latency(url: str, data: list[tuple[bytes, str]]) -> None:
    to_interim, to_final = [], []
    for pcm, _ in data:  # every clip, one stream at a time
        speech_only = pcm[: len(pcm) - int(TAIL_SILENCE_SECONDS * BYTES_PER_SECOND)]
        audio_end, first_interim, last_final, _ = await play(url + "&interim_results=true", speech_only)
        if first_interim is not None:
            to_interim.append(first_interim - speech_onset(pcm))
        if last_final is not None:
            to_final.append(last_final - audio_end)
    print(
        f"speech start -> first interim:      median {statistics.median(to_interim):.2f} s "
        f"(max {max(to_interim):.2f} s, {len(to_interim)} streams at real time)"
    )
    print(
        f"CloseStream -> final result:        median {statistics.median(to_final) * 1000:.0f} ms "
        f"(max {max(to_final) * 1000:.0f} ms)"
    )


async def final_lags(url: str, pcm: bytes, delay: float) -> list[float]:
    """Stream ``pcm`` at real time after ``delay``; each final result's lag behind its audio's end."""
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    async with connect(url, compression=None, max_size=None, open_timeout=60, ping_interval=None) as ws:
        started = loop.time()

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") == "Results" and message["is_final"]:
                    lags.append(loop.time() - (started + message["start"] + message["duration"]))

        reader = asyncio.create_task(read())
        frame = int(FRAME_SECONDS * BYTES_PER_SECOND)
        for index, offset in enumerate(range(0, len(pcm), frame)):
            await asyncio.sleep(max(0.0, started + index * FRAME_SECONDS - loop.time()))
            await ws.send(pcm[offset : offset + frame])
        await ws.send(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(reader, 120)
    return lags


async def p99_lag(url: str, data: list[tuple[bytes, str]], streams: int) -> float:
    """p99 lag of final results with ``streams`` real-time streams at once (starts spread over 1 s)."""
    plays = [
        final_lags(url, b"".join(data[(i + k) % len(data)][0] for k in range(3)), i / streams)
        for i in range(streams)
    ]
    lags = sorted(lag for outcome in await asyncio.gather(*plays) for lag in outcome)
    return lags[min(len(lags) - 1, int(0.99 * len(lags)))]


async def bench_capacity(url: str, data: list[tuple[bytes, str]], label: str) -> int:
    """The most real-time streams with p99 final lag under the limit: double from 2, then bisect."""
    best, failed, streams = 0, 0, 2
    while True:
        lag = await p99_lag(url, data, streams)
        verdict = "sustained" if lag < SUSTAIN_LAG_SECONDS else "falls behind"
        print(f"  {label}: {streams:3d} real-time streams, p99 final lag {lag:5.2f} s  {verdict}", flush=True)
        if lag < SUSTAIN_LAG_SECONDS:
            best = streams
        else:
            failed = streams
        if not failed:
            if streams >= MAX_STREAMS:
                break
            streams = min(MAX_STREAMS, streams * 2)
        elif failed - best <= 1:
            break
        else:
            streams = (best + failed) // 2
    print(f"real-time streams sustained, {label}: {best}")
    return best


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids += process_tree(int(child))
    return pids


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants: shared pages count once in all."""
    total = 0
    for member in process_tree(pid):
        for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


async def open_decoded(url: str, pcm: bytes) -> Any:
    """A session that has decoded ``pcm`` (sent at once) and its final result, and stays open."""
    ws = await connect(url, compression=None, max_size=None, open_timeout=60, ping_interval=None)
    frame = int(FRAME_SECONDS * BYTES_PER_SECOND)
    for offset in range(0, len(pcm), frame):
        await ws.send(pcm[offset : offset + frame])
    await ws.send(json.dumps({"type": "Finalize"}))
    async for raw in ws:
        if json.loads(raw).get("from_finalize"):
            return ws
    raise RuntimeError("the session closed before its Finalize result")


async def bench_server_memory(url: str, pid: int, data: list[tuple[bytes, str]], extra: int) -> None:
    idle = pss_mb(pid)
    sessions = [await open_decoded(url, data[0][0])]
    first = pss_mb(pid)
    sessions += await asyncio.gather(
        *(open_decoded(url, data[i % len(data)][0]) for i in range(1, extra + 1))
    )
    more = pss_mb(pid)
    print(
        f"server memory (PSS, server + workers): {idle:.0f} MB idle, first session +{first - idle:.0f} MB, "
        f"each of {extra} more +{(more - first) / extra:.1f} MB"
    )
    await asyncio.gather(*(ws.close() for ws in sessions))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_cpu_per_audio_second(url: str, pid: int, data: list[tuple[bytes, str]], label: str) -> None:
    """CPU per second of audio, one stream sent at once: in the server process, and in all its processes."""
    pcm = b"".join(pcm for pcm, _ in data[:4])
    ws = await connect(url, compression=None, max_size=None, open_timeout=60, ping_interval=None)
    tree_before = sum(cpu_seconds(member) for member in process_tree(pid))
    own_before = cpu_seconds(pid)
    frame = int(FRAME_SECONDS * BYTES_PER_SECOND)
    for offset in range(0, len(pcm), frame):
        await ws.send(pcm[offset : offset + frame])
    await ws.send(json.dumps({"type": "CloseStream"}))
    async for _ in ws:
        pass
    audio = len(pcm) / BYTES_PER_SECOND
    tree = (sum(cpu_seconds(member) for member in process_tree(pid)) - tree_before) / audio
    print(
        f"  {label}: CPU per audio second, one stream: {tree:.3f} in all, "
        f"{(cpu_seconds(pid) - own_before) / audio:.3f} of it in the server process"
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("decoder", "memory", "latency", "cpu", "capacity"))
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="TRANSCRIBE_WORKERS for the capacity runs (default: 1 and all)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run this load generator and the servers it starts at this nice value (negative needs root): "
        "on a machine busy with other work, the figures then measure the server, not its share of the CPU",
    )
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)  # the servers inherit it
    print(f"load average before: {load_average()} (other work on the machine skews every figure)")
    data = clips()
    if args.only in (None, "decoder"):
        pool = DecoderPool(max_idle=8)
        pool.load(warm=1)
        bench_real_time_factor(pool, data)
        bench_real_time_factor(pool, speech_like_noise(), "noise")
        bench_memory(pool)
        del pool
    listen = "/v1/listen?encoding=linear16&sample_rate=16000"
    if args.only in (None, "memory", "latency"):
        with model_server(env={"MODELS": "transcribe", "TRANSCRIBE_MAX_SESSIONS": "16"}) as server:
            url = f"ws://127.0.0.1:{server.port}{listen}"
            if args.only in (None, "memory"):
                asyncio.run(bench_server_memory(url, server.process.pid, data, extra=8))
            if args.only in (None, "latency"):
                asyncio.run(bench_latency(url, data))
    if args.only in (None, "cpu", "capacity"):
        for workers in args.workers or [1, 0]:
            # Decoders made up front, so no stream of a level waits for one (the default makes at most 8).
            env = {"MODELS": "transcribe", "TRANSCRIBE_MAX_SESSIONS": "64", "TRANSCRIBE_WARM_DECODERS": "8"}
            if workers:
                env["TRANSCRIBE_WORKERS"] = str(workers)
            with model_server(env=env) as server:
                label = f"{workers} worker(s)" if workers else f"default workers ({os.cpu_count()} CPUs)"
                url = f"ws://127.0.0.1:{server.port}{listen}&interim_results=true"
                asyncio.run(bench_cpu_per_audio_second(url, server.process.pid, data, label))
                if args.only != "cpu":
                    asyncio.run(bench_capacity(url, data, label))
    print(f"load average after:  {load_average()}")


if __name__ == "__main__":
    main()
