"""Render Deepgram-style ``v1/listen`` messages (``Results``, ``Metadata``) for a terminal or a pipe.

On a TTY, interim results rewrite the current line (``\\r``) and a final result ends it, so the
transcript grows in place. Not on a TTY, only final results are printed, one per line, so a pipe gets
a clean transcript. Other messages (``Metadata``, ``SpeechStarted``...) go to stderr as diagnostics.

Stdlib only: the smoke-test Lambda imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class TranscriptMessage:
    """The parts of a ``Results`` message a reader cares about."""

    transcript: str
    is_final: bool


def parse_results(data: bytes) -> TranscriptMessage | None:
    """The transcript of a ``Results`` message, or None for any other message (or non-JSON)."""
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(message, dict) or message.get("type") != "Results":
        return None
    alternatives = (message.get("channel") or {}).get("alternatives") or [{}]
    transcript = str(alternatives[0].get("transcript") or "")
    return TranscriptMessage(transcript=transcript, is_final=bool(message.get("is_final")))


class TranscriptPrinter:
    """Prints a growing transcript; see the module docstring for TTY vs pipe behaviour."""

    def __init__(self, out: TextIO, diagnostics: TextIO, *, tty: bool) -> None:
        self._out = out
        self._diagnostics = diagnostics
        self._tty = tty
        self._interim_width = 0
        self.finals: list[str] = []

    def show(self, data: bytes) -> None:
        result = parse_results(data)
        if result is None:
            self._clear_interim()
            self._diagnostics.write(data.decode(errors="replace").strip() + "\n")
            self._diagnostics.flush()
            return
        if result.is_final:
            if result.transcript:
                self.finals.append(result.transcript)
                if self._tty:
                    self._out.write("\r" + result.transcript.ljust(self._interim_width) + "\n")
                else:
                    self._out.write(result.transcript + "\n")
            else:
                self._clear_interim()
            self._interim_width = 0
        elif self._tty and result.transcript:
            self._out.write("\r" + result.transcript.ljust(self._interim_width))
            self._interim_width = len(result.transcript)
        self._out.flush()

    def finish(self) -> None:
        self._clear_interim()

    def _clear_interim(self) -> None:
        if self._tty and self._interim_width:
            self._out.write("\r" + " " * self._interim_width + "\r")
            self._out.flush()
            self._interim_width = 0
