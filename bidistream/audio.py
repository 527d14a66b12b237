"""WAV files as real-time audio: 16-bit PCM chunks sent at the pace they would be spoken.

Stdlib only: the smoke-test Lambda imports this module.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CHUNK_SECONDS: Final = 0.1  # 100 ms per binary part, a common live-audio frame


class AudioFileError(ValueError):
    """The file is not a WAV file this tool can stream (16-bit PCM)."""


@dataclass(frozen=True)
class PcmAudio:
    """Raw little-endian PCM samples and their format."""

    pcm: bytes
    sample_rate: int
    channels: int
    sample_width: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (self.sample_rate * self.channels * self.sample_width)

    @property
    def query_string(self) -> str:
        """The Deepgram-style ``ModelQueryString`` that describes this audio."""
        return f"encoding=linear16&sample_rate={self.sample_rate}&channels={self.channels}"

    def chunks(self, seconds: float = CHUNK_SECONDS) -> list[bytes]:
        step = max(1, round(seconds * self.sample_rate)) * self.channels * self.sample_width
        return [self.pcm[offset : offset + step] for offset in range(0, len(self.pcm), step)]


def read_wav(source: Path | bytes) -> PcmAudio:
    """Read a PCM WAV file (path or bytes); raises ``AudioFileError`` with what is wrong."""
    try:
        with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as wav:
            audio = PcmAudio(
                pcm=wav.readframes(wav.getnframes()),
                sample_rate=wav.getframerate(),
                channels=wav.getnchannels(),
                sample_width=wav.getsampwidth(),
            )
    except (wave.Error, EOFError) as error:
        raise AudioFileError(f"not a PCM WAV file: {error}") from None
    if audio.sample_width != 2:
        raise AudioFileError(f"need 16-bit PCM, the file has {8 * audio.sample_width}-bit samples")
    return audio


async def paced(chunks: list[bytes], chunk_seconds: float, speed: float = 1.0) -> AsyncIterator[bytes]:
    """Yield ``chunks`` no faster than ``speed`` times real time (deadline-based, so no drift)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, chunk in enumerate(chunks):
        due = start + index * chunk_seconds / speed
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield chunk
