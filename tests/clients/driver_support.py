"""What every client driver shares. Runs inside the client's own virtualenv: standard library only.

A driver is a script that uses one real client package the way its documentation shows and prints
what it saw as JSON lines on stdout (one object per event, ``{"event": ...}``), for the test in .venv
to read. The test passes the local endpoint's address in ``RUNTIME_URI_VARIABLE``; pointing the
client's hard-coded public runtime address there is the one change a driver makes to the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNTIME_URI_VARIABLE = "BIDISTREAM_RUNTIME_URI"
ENDPOINT_NAME_VARIABLE = "BIDISTREAM_ENDPOINT_NAME"
FRAME_SECONDS = 0.02  # what a telephony or WebRTC transport hands a voice agent at a time


def runtime_uri() -> str:
    """The local endpoint's https:// address, which replaces runtime.sagemaker.<region>.amazonaws.com."""
    return os.environ[RUNTIME_URI_VARIABLE]


def endpoint_name() -> str:
    return os.environ[ENDPOINT_NAME_VARIABLE]


def region() -> str:
    return os.environ["AWS_REGION"]


STARTED = time.monotonic()


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, with the seconds since the driver started; the test reads them at exit."""
    line = {"event": event, "t": round(time.monotonic() - STARTED, 3), **fields}
    print(json.dumps(line, default=str), flush=True)


@dataclass(frozen=True)
class Clip:
    """A WAV file's samples as the client sends them: 16-bit little-endian PCM."""

    pcm: bytes
    sample_rate: int
    channels: int

    @classmethod
    def read(cls, path: Path) -> Clip:
        with wave.open(str(path), "rb") as clip:
            if clip.getsampwidth() != 2:
                raise SystemExit(f"{path}: expected 16-bit PCM, got {8 * clip.getsampwidth()}-bit")
            return cls(clip.readframes(clip.getnframes()), clip.getframerate(), clip.getnchannels())

    def frames(self, seconds: float = FRAME_SECONDS) -> list[bytes]:
        size = int(self.sample_rate * seconds) * 2 * self.channels
        return [self.pcm[offset : offset + size] for offset in range(0, len(self.pcm), size)]

    def silence(self, seconds: float) -> bytes:
        return bytes(int(self.sample_rate * seconds) * 2 * self.channels)


async def real_time(frames: list[bytes], seconds_per_frame: float) -> AsyncIterator[bytes]:
    """Yield ``frames`` at the pace a live source produces them (no drift: each has its own deadline)."""
    started = time.monotonic()
    for index, frame in enumerate(frames):
        delay = started + index * seconds_per_frame - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield frame


def fail(message: str) -> None:
    """End the driver with an error the test shows verbatim."""
    emit("driver_error", message=message)
    sys.exit(1)
