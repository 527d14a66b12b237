"""Word error rates of the transcribe model on the broader evaluation set, next to pocketsphinx's defaults.

Both decoders hear the same audio the same way: each clip streamed in 20 ms frames, as a live client
sends it. Ours goes through the real decoding code, a ``StreamRecognizer`` on a pooled decoder fed the
way a ``v1/listen`` session feeds it (slices of at most ``DECODE_SLICE_BYTES``, then ``CloseStream``);
the final results' words are its transcript. pocketsphinx's defaults are its documented live loop: a
default ``Endpointer`` cutting utterances for a default ``Decoder``. No network, no server.

The sets: ``tests/data/eval`` (made by its ``make_eval.sh``: espeak-ng's default English voices and
female variants, the Klatt voice, 140-190 words a minute, white and pink noise at 20 and 10 dB SNR;
WER per condition) and ``tests/data/speech`` (the 12 Klatt sentences the fast test uses). Word error
rates are deterministic, so a busy machine changes only how long this takes (about 2 min per decoder).

    .venv/bin/python bench/bench_accuracy.py
    .venv/bin/python bench/bench_accuracy.py --only ours --config lw=8 --config beam=1e-60
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import wave
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "container")]

from pocketsphinx import Decoder, Endpointer  # noqa: E402

from model_server.models.transcribe import decoder as decoder_module  # noqa: E402
from model_server.models.transcribe.audio import PcmInput  # noqa: E402
from model_server.models.transcribe.decoder import DecoderPool  # noqa: E402
from model_server.models.transcribe.params import DEFAULT_ENDPOINTING_MS  # noqa: E402
from model_server.models.transcribe.recognizer import StreamRecognizer  # noqa: E402
from model_server.models.transcribe.session import DECODE_SLICE_BYTES  # noqa: E402
from tests.transcribe.wer import word_error_rate, words  # noqa: E402

EVAL = REPO / "tests" / "data" / "eval"
SPEECH = REPO / "tests" / "data" / "speech"
FRAME_BYTES = 640  # 20 ms of 16 kHz 16-bit mono, what a live client sends per frame


@dataclass(frozen=True)
class Clip:
    name: str
    text: str
    pcm: bytes
    voice: str = "en-us+klatt2"
    wpm: int = 160
    noise: str = "clean"


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as clip:
        return clip.readframes(clip.getnframes())


def eval_clips() -> list[Clip]:
    with (EVAL / "transcripts.tsv").open(newline="") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    return [
        Clip(
            name=row["file"],
            text=row["text"],
            pcm=read_pcm(EVAL / row["file"]),
            voice=row["voice"],
            wpm=int(row["wpm"]),
            noise="clean" if row["noise"] == "none" else f"{row['noise']} {row['snr_db']} dB",
        )
        for row in rows
    ]


def speech_clips() -> list[Clip]:
    lines = (SPEECH / "transcripts.tsv").read_text().splitlines()
    return [
        Clip(name=name, text=text, pcm=read_pcm(SPEECH / name))
        for name, text in (line.split("\t") for line in lines)
    ]


def frames(pcm: bytes) -> Iterator[bytes]:
    for offset in range(0, len(pcm), FRAME_BYTES):
        yield pcm[offset : offset + FRAME_BYTES]


class Ours:
    """The model's decoding path, as ``TranscribeSession`` drives it (without the network)."""

    name = "ours"

    def __init__(self) -> None:
        self._pool = DecoderPool(max_idle=1)
        self._pool.load(warm=1)

    def transcribe(self, pcm: bytes) -> str:
        decoder = self._pool.acquire()
        stream = StreamRecognizer(decoder, interim_results=False, endpointing_ms=DEFAULT_ENDPOINTING_MS)
        audio = PcmInput()
        results = []
        for frame in frames(pcm):
            whole = audio.push(frame)
            for offset in range(0, len(whole), DECODE_SLICE_BYTES):
                results += stream.accept(whole[offset : offset + DECODE_SLICE_BYTES])
        results += stream.finalize(from_finalize=False, closing=True)
        stream.close()
        self._pool.release(decoder)
        return " ".join(result.text for result in results if result.is_final and result.text)


class PocketsphinxDefaults:
    """pocketsphinx's own live loop with every setting at its default (its README's example).

    Each clip is a new stream: a new ``Endpointer``, and the decoder's cepstral mean reset to where it
    started, as our pool resets a reused decoder.
    """

    name = "pocketsphinx defaults"

    def __init__(self) -> None:
        self._decoder = Decoder(samprate=Endpointer().sample_rate, loglevel="ERROR")
        self._initial_cmn = self._decoder.get_cmn()

    def transcribe(self, pcm: bytes) -> str:
        decoder, endpointer = self._decoder, Endpointer()
        decoder.set_cmn(self._initial_cmn)
        texts: list[str] = []
        in_utterance = False
        buffered = b""
        for frame in frames(pcm):
            buffered += frame
            while len(buffered) >= endpointer.frame_bytes:
                chunk, buffered = buffered[: endpointer.frame_bytes], buffered[endpointer.frame_bytes :]
                speech = endpointer.process(chunk)
                if speech is None:
                    continue
                if not in_utterance:
                    decoder.start_utt()
                    in_utterance = True
                decoder.process_raw(speech)
                if not endpointer.in_speech:
                    decoder.end_utt()
                    in_utterance = False
                    texts.append(self._hypothesis())
        speech = endpointer.end_stream(buffered)
        if speech is not None:
            if not in_utterance:
                decoder.start_utt()
                in_utterance = True
            decoder.process_raw(speech)
        if in_utterance:
            decoder.end_utt()
            texts.append(self._hypothesis())
        return " ".join(text for text in texts if text)

    def _hypothesis(self) -> str:
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


Transcriber = Ours | PocketsphinxDefaults


@contextmanager
def config_overrides(overrides: dict[str, Any]) -> Iterator[None]:
    """Decode with pocketsphinx settings changed, to try values before they go into decoder.py."""
    if not overrides:
        yield
        return
    original: Callable[[], Any] = decoder_module.decoder_config

    def patched() -> Any:
        config = original()
        for key, value in overrides.items():
            config[key] = value
        return config

    with mock.patch.object(decoder_module, "decoder_config", patched):
        yield


def parse_override(text: str) -> tuple[str, Any]:
    key, separator, raw = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    value: Any = raw
    for kind in (int, float):
        try:
            value = kind(raw)
            break
        except ValueError:
            continue
    if raw in ("yes", "no", "true", "false"):
        value = raw in ("yes", "true")
    return key, value


def score(transcriber: Transcriber, clips: list[Clip]) -> list[tuple[Clip, str]]:
    return [(clip, transcriber.transcribe(clip.pcm)) for clip in clips]


def rate(pairs: list[tuple[Clip, str]]) -> float:
    return word_error_rate((clip.text, hypothesis) for clip, hypothesis in pairs)


def groups(scored: list[tuple[Clip, str]]) -> dict[str, list[tuple[Clip, str]]]:
    """The set cut by what varies: noise condition, voice, speaking rate."""
    cuts: dict[str, list[tuple[Clip, str]]] = defaultdict(list)
    for clip, hypothesis in scored:
        cuts[f"noise: {clip.noise}"].append((clip, hypothesis))
        if clip.noise == "clean":
            cuts[f"voice: {clip.voice} (clean)"].append((clip, hypothesis))
            band = "140-155" if clip.wpm <= 155 else "165" if clip.wpm <= 170 else "180-190"
            cuts[f"rate: {band} wpm (clean)"].append((clip, hypothesis))
    return dict(sorted(cuts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("ours", "defaults"), help="score one decoder (default: both)")
    parser.add_argument(
        "--config", type=parse_override, action="append", default=[], help="pocketsphinx key=value for ours"
    )
    parser.add_argument("--errors", action="store_true", help="print every clip whose words differ")
    args = parser.parse_args()
    started = time.monotonic()
    evaluation, speech = eval_clips(), speech_clips()
    print(
        f"tests/data/eval: {len(evaluation)} clips, {sum(len(words(c.text)) for c in evaluation)} words; "
        f"tests/data/speech: {len(speech)} clips; load average {os.getloadavg()[0]:.1f}"
    )
    transcribers: list[Callable[[], Transcriber]] = []
    if args.only != "defaults":
        transcribers.append(Ours)
    if args.only != "ours":
        transcribers.append(PocketsphinxDefaults)
    results: dict[str, tuple[list[tuple[Clip, str]], list[tuple[Clip, str]]]] = {}
    with config_overrides(dict(args.config)):
        for make in transcribers:
            transcriber = make()
            results[transcriber.name] = (score(transcriber, evaluation), score(transcriber, speech))
    names = list(results)
    print(f"{'word error rate':44}" + "".join(f"{name:>24}" for name in names))
    cuts = {name: groups(scored) for name, (scored, _) in results.items()}
    for cut in cuts[names[0]]:
        count = len(cuts[names[0]][cut])
        print(f"{cut + f' [{count}]':44}" + "".join(f"{rate(cuts[name][cut]):24.3f}" for name in names))
    print(f"{'tests/data/eval, all':44}" + "".join(f"{rate(results[name][0]):24.3f}" for name in names))
    print(
        f"{'tests/data/speech (12 Klatt sentences)':44}"
        + "".join(f"{rate(results[n][1]):24.3f}" for n in names)
    )
    if args.config:
        print("ours with " + ", ".join(f"{key}={value}" for key, value in args.config))
    if args.errors:
        for name, (scored, speech_scored) in results.items():
            for clip, hypothesis in scored + speech_scored:
                if words(clip.text) != words(hypothesis):
                    print(f"  {name}: {clip.name}: {hypothesis!r}")
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
