"""The ``v1/listen`` query parameters, named and checked as Deepgram names them.

Deepgram refuses an unknown or invalid parameter with HTTP 400, so a typo never passes silently; this
module does the same for every parameter it does not take. Values a Deepgram client commonly sends for
its own service (``model=nova-3``, ``language=en-US``) are accepted and served by this model, so one
client works against both; the ``Metadata`` message names the model that really answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from model_server.model import QueryError

#: The only audio this model decodes: what its acoustic model was trained on.
SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2  # bytes per sample (16-bit signed little-endian)
CHANNELS = 1

#: Deepgram model names accepted as aliases, so a client written for Deepgram needs no change.
MODEL_NAMES = frozenset({"pocketsphinx", "nova-3", "nova-3-general", "nova-2", "nova-2-general", "general"})
LANGUAGES = frozenset({"en", "en-us"})
#: Milliseconds of non-speech that end an utterance when ``endpointing`` is not given. Deepgram's
#: default (10 ms) would split this model's utterances at every short pause between words, and an
#: n-gram decoder needs the whole phrase for its context.
DEFAULT_ENDPOINTING_MS = 300
MIN_ENDPOINTING_MS = 10
MAX_ENDPOINTING_MS = 10_000

PARAMETERS = (
    "channels",
    "encoding",
    "endpointing",
    "interim_results",
    "language",
    "model",
    "punctuate",
    "sample_rate",
)


@dataclass(frozen=True)
class ListenParams:
    """One session's settings, parsed from the upgrade's query string."""

    interim_results: bool = False
    punctuate: bool = False
    #: Milliseconds of non-speech that end an utterance; None: only Finalize and CloseStream do.
    endpointing_ms: int | None = DEFAULT_ENDPOINTING_MS


def parse_listen_query(query: Mapping[str, str]) -> ListenParams:
    """Check every parameter; raise ``QueryError`` (HTTP 400) naming the first bad one."""
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        raise QueryError(
            f"unknown query parameter(s) {', '.join(unknown)}; this model takes {', '.join(PARAMETERS)}"
        )
    encoding = query.get("encoding")
    if encoding is not None and encoding.lower() != "linear16":
        raise QueryError(
            f"encoding={encoding!r} is not supported: this model decodes linear16 "
            "(16-bit signed little-endian PCM) only"
        )
    sample_rate = _integer(query, "sample_rate", SAMPLE_RATE)
    if sample_rate != SAMPLE_RATE:
        raise QueryError(
            f"sample_rate={sample_rate} is not supported: this model decodes {SAMPLE_RATE} Hz audio; "
            f"resample on the client (e.g. sox in.wav -r {SAMPLE_RATE} out.wav)"
        )
    channels = _integer(query, "channels", CHANNELS)
    if channels != CHANNELS:
        raise QueryError(f"channels={channels} is not supported: this model decodes mono audio (channels=1)")
    model = query.get("model", "pocketsphinx")
    if model.lower() not in MODEL_NAMES:
        raise QueryError(
            f"model={model!r} is not available: this endpoint serves pocketsphinx "
            f"(accepted names: {', '.join(sorted(MODEL_NAMES))})"
        )
    language = query.get("language", "en")
    if language.lower() not in LANGUAGES:
        raise QueryError(
            f"language={language!r} is not supported: this model transcribes English (en, en-US)"
        )
    return ListenParams(
        interim_results=_boolean(query, "interim_results", False),
        punctuate=_boolean(query, "punctuate", False),
        endpointing_ms=_endpointing(query.get("endpointing")),
    )


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = _ascii_whole_number(raw)
    if value is None:
        raise QueryError(f"{name}={raw!r} is not valid: must be a whole number")
    return value


def _ascii_whole_number(raw: str) -> int | None:
    """``raw`` as a whole number if it is ASCII digits only, else None.

    ``str.isdigit`` alone is true for "¹" (which ``int`` refuses) and for other scripts' digits (which
    ``int`` reads), and ``int`` refuses more than 4300 digits: each would be a 500 or a surprise.
    """
    if not (raw.isascii() and raw.isdigit()):
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _boolean(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.lower()
    if value not in ("true", "false"):
        raise QueryError(f"{name}={raw!r} is not valid: must be true or false")
    return value == "true"


def _endpointing(raw: str | None) -> int | None:
    if raw is None or raw.lower() == "true":
        return DEFAULT_ENDPOINTING_MS
    if raw.lower() == "false":
        return None
    milliseconds = _ascii_whole_number(raw)
    if milliseconds is None or not MIN_ENDPOINTING_MS <= milliseconds <= MAX_ENDPOINTING_MS:
        raise QueryError(
            f"endpointing={raw!r} is not valid: must be false or milliseconds of silence "
            f"from {MIN_ENDPOINTING_MS} to {MAX_ENDPOINTING_MS}"
        )
    return milliseconds
