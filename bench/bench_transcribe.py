"""Benchmark of the transcribe model (v1/listen): speed, capacity, latency and memory.

Prints, for the generated speech clips in tests/data/speech:
1. real-time factor of one stream (decoding CPU seconds per second of audio), in-process, on one core,
   and the word error rate of that decode;
2. decoder memory per session (RSS growth per decoder), shared language model vs pocketsphinx's default;
3. how many concurrent real-time streams one core sustains: the server pinned to core 0 (all its
   threads), clients on core 1, N sessions each sending audio at real time in 20 ms frames; a load is
   sustained when every stream's last result arrives within SUSTAIN_LAG_SECONDS of its audio ending;
4. latency at real time, one stream: from the first sample of speech to the first interim result, and
   from CloseStream (sent right after the last word, no trailing silence) to the final result.

Usage: .venv/bin/python bench/bench_transcribe.py   (about 90 s on 2 cores)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "container")]

from pocketsphinx import Decoder  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from model_server.models.transcribe.decoder import DecoderPool  # noqa: E402
from model_server.models.transcribe.recognizer import StreamRecognizer  # noqa: E402
from tests.support.processes import model_server  # noqa: E402
from tests.transcribe.wer import word_error_rate  # noqa: E402

SPEECH = REPO / "tests" / "data" / "speech"
SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2
FRAME_SECONDS = 0.02  # what a live client sends per frame
LEAD_SILENCE_SECONDS = 0.5  # the clips start with this much silence (tests/data/make_speech.sh)
TAIL_SILENCE_SECONDS = 1.0
SUSTAIN_LAG_SECONDS = 1.0
SERVER_CORE, CLIENT_CORE = 0, 1


def clips() -> list[tuple[bytes, str]]:
    out = []
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        with wave.open(str(SPEECH / name), "rb") as clip:
            out.append((clip.readframes(clip.getnframes()), text))
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bench_real_time_factor(pool: DecoderPool, data: list[tuple[bytes, str]]) -> float:
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
        f"real-time factor, one stream:       {cpu / audio:.3f}  ({cpu:.2f} CPU s for {audio:.1f} s of audio)"
    )
    print(f"word error rate on the set:         {word_error_rate(pairs):.3f}  ({len(pairs)} sentences)")
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
    async with connect(url, compression=None, max_size=None) as ws:

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


async def bench_latency(url: str, data: list[tuple[bytes, str]]) -> None:
    to_interim, to_final = [], []
    for pcm, _ in data[:4]:
        speech_only = pcm[: len(pcm) - int(TAIL_SILENCE_SECONDS * BYTES_PER_SECOND)]
        audio_end, first_interim, last_final, _ = await play(url + "&interim_results=true", speech_only)
        if first_interim is not None:
            to_interim.append(first_interim - LEAD_SILENCE_SECONDS)
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


async def sustained(url: str, data: list[tuple[bytes, str]], streams: int) -> float:
    """The worst lag (s) of a stream's last result behind its audio's end, with ``streams`` at once."""
    plays = [play(url, data[i % len(data)][0] + data[(i + 5) % len(data)][0]) for i in range(streams)]
    outcomes = await asyncio.gather(*plays)
    return max(last_message - audio_end for audio_end, _, _, last_message in outcomes)


async def bench_capacity(url: str, data: list[tuple[bytes, str]], real_time_factor: float) -> None:
    best = 0
    first = max(1, int(0.6 / real_time_factor))  # start a little below what the CPU time alone allows
    for streams in range(first, first + 6):
        lag = await sustained(url + "&interim_results=true", data, streams)
        verdict = "sustained" if lag <= SUSTAIN_LAG_SECONDS else "falls behind"
        print(f"  {streams:2d} real-time streams on one core: worst lag {lag:5.2f} s  {verdict}")
        if lag > SUSTAIN_LAG_SECONDS:
            break
        best = streams
    print(f"concurrent real-time streams / core: {best}")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    print(f"load average before: {load_average()} (other work on the machine skews every figure)")
    data = clips()
    pool = DecoderPool(max_idle=8)
    pool.load(warm=1)
    real_time_factor = bench_real_time_factor(pool, data)
    bench_memory(pool)
    os.sched_setaffinity(0, {CLIENT_CORE})
    with model_server(env={"MODELS": "transcribe", "TRANSCRIBE_WARM_DECODERS": "10"}) as server:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(SERVER_CORE), str(server.process.pid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        url = f"ws://127.0.0.1:{server.port}/v1/listen?encoding=linear16&sample_rate=16000"
        asyncio.run(bench_latency(url, data))
        asyncio.run(bench_capacity(url, data, real_time_factor))
    print(f"load average after:  {load_average()}")


if __name__ == "__main__":
    main()
