"""Text to speech from the command line: Deepgram's Speak/Close messages out, the audio into a WAV file.

The audio format is what the stream's query asks for, with Deepgram's defaults (``linear16`` at
24 kHz; ``mulaw`` and ``alaw`` at 8 kHz), so the header always matches the bytes that came back.
G.711 goes into the WAV as it is (format 7 mu-law, 6 A-law), which players decode themselves.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl

from aws_sdk_sagemaker_runtime_http2.models import ModelStreamError  # type: ignore[import-untyped]

from bidistream.client import Part, StreamTarget, Timeouts, open_stream

CLOSE: Final = '{"type":"Close"}'
NORMAL_CLOSURE: Final = "1000"
#: WAVE format codes (RFC 2361) and bytes per sample, by Deepgram encoding name.
FORMATS: Final = {"linear16": (1, 2), "alaw": (6, 1), "mulaw": (7, 1)}
DEFAULT_RATES: Final = {"linear16": 24000, "alaw": 8000, "mulaw": 8000}


class SpeechFormatError(ValueError):
    """The query asks for audio this tool cannot put in a WAV file."""


def speak_message(text: str) -> str:
    return json.dumps({"type": "Speak", "text": text})


@dataclass(frozen=True)
class SpeechFormat:
    encoding: str
    sample_rate: int

    @classmethod
    def from_query(cls, query: str | None) -> SpeechFormat:
        fields = dict(parse_qsl(query or ""))
        encoding = fields.get("encoding", "linear16").lower()
        if encoding not in FORMATS:
            raise SpeechFormatError(
                f"encoding={encoding!r} cannot be written as WAV: use {', '.join(sorted(FORMATS))}"
            )
        raw_rate = fields.get("sample_rate")
        if raw_rate is None:
            return cls(encoding, DEFAULT_RATES[encoding])
        if not (raw_rate.isascii() and raw_rate.isdigit()) or not 0 < int(raw_rate) < 1_000_000:
            raise SpeechFormatError(f"sample_rate={raw_rate!r} is not a number of hertz")
        return cls(encoding, int(raw_rate))

    def describe(self, data_bytes: int) -> str:
        seconds = data_bytes / FORMATS[self.encoding][1] / self.sample_rate
        return f"{seconds:.2f} s of {self.encoding} at {self.sample_rate} Hz"

    def wav_header(self, data_bytes: int) -> bytes:
        """A canonical 44-byte (PCM) or 46-byte (G.711, with cbSize) header for ``data_bytes`` of audio."""
        format_code, width = FORMATS[self.encoding]
        fmt = struct.pack(
            "<HHIIHH", format_code, 1, self.sample_rate, self.sample_rate * width, width, width * 8
        )
        if format_code != 1:
            fmt += struct.pack("<H", 0)  # non-PCM formats carry an (empty) extension size
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_bytes)
        return b"RIFF" + struct.pack("<I", len(body) + data_bytes + data_bytes % 2) + body


def write_wav(path: Path, audio: bytes, speech_format: SpeechFormat) -> None:
    """Write ``audio`` with its header; the file is replaced only once it is complete."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(speech_format.wav_header(len(audio)) + audio + b"\x00" * (len(audio) % 2))
    partial.replace(path)


async def synthesize(target: StreamTarget, texts: list[str], timeouts: Timeouts | None = None) -> bytes:
    """The audio ``target`` (a v1/speak stream) answers for ``texts``: Speak each, then Close.

    The model closes the stream with 1000 once it has spoken everything; any other end raises.
    """
    audio = bytearray()
    async with open_stream(target, timeouts or Timeouts()) as stream:
        for text in texts:
            await stream.send(Part.text(speak_message(text)))
        await stream.send(Part.text(CLOSE))
        try:
            while (part := await stream.receive()) is not None:
                if not part.is_text:
                    audio += part.data
        except ModelStreamError as error:
            if error.error_code != NORMAL_CLOSURE:
                raise
    return bytes(audio)
