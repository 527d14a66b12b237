"""The ``v1/listen`` query parameters: every one Deepgram's live API takes, each honoured or refused.

Deepgram refuses an unknown or invalid parameter with HTTP 400, so a typo never passes silently; this
module does the same. Every parameter of Deepgram's live API (the keywords of ``deepgram-sdk``'s
``listen.v1.connect`` plus ``filler_words``, ``no_delay``, ``alternatives`` and ``diarize_version``
from its live documentation) is known by name. Each is either honoured, or accepted only with the
value that asks for nothing this model cannot do: ``diarize=true`` is a 400 with the reason, never a
session that silently has no speakers. The README's table lists what happens to each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from model_server.model import QueryError
from model_server.query import Query

#: What the acoustic model decodes; every stream is converted to this (see ``convert``).
SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2  # bytes per sample (16-bit signed little-endian)
CHANNELS = 1
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000
#: Each channel of a multichannel stream has its own decoder (about 58 MB).
MAX_CHANNELS = 8

#: Deepgram's streaming model names (each family with its domain variants), accepted as aliases so a
#: client written for Deepgram needs no change. The Metadata message names the model that answered.
MODEL_FAMILIES = ("nova-3", "nova-2", "nova", "enhanced", "base")
MODEL_VARIANTS = (
    "general",
    "medical",
    "meeting",
    "phonecall",
    "finance",
    "conversationalai",
    "voicemail",
    "video",
    "drivethru",
    "automotive",
    "atc",
)
MODEL_NAMES = frozenset(
    {"pocketsphinx", "general"}
    | set(MODEL_FAMILIES)
    | {f"{family}-{variant}" for family in MODEL_FAMILIES for variant in MODEL_VARIANTS}
)
#: English and any region of it: pocketsphinx's US English model is the one it has.
LANGUAGE = re.compile(r"^en(-[a-z]{2})?$", re.IGNORECASE)
#: Milliseconds of non-speech that end an utterance when ``endpointing`` is not given. Deepgram's
#: default (10 ms) would split this model's utterances at every short pause between words, and an
#: n-gram decoder needs the whole phrase for its context.
DEFAULT_ENDPOINTING_MS = 300
MIN_ENDPOINTING_MS = 10
MAX_ENDPOINTING_MS = 10_000
#: Deepgram's UtteranceEnd gap: at least 1000 ms, since interim results come about once a second.
MIN_UTTERANCE_END_MS = 1000
MAX_UTTERANCE_END_MS = 5000
#: ``redact`` values this model honours; ``true`` is Deepgram's synonym for ``numbers``.
REDACT_VALUES = frozenset({"numbers", "pci", "ssn"})
#: ``version`` values: the newest (the only one this endpoint has).
VERSIONS = frozenset({"latest"})
#: Deepgram's limit on one ``extra`` or ``tag`` value.
MAX_TAG_CHARS = 2048
#: ``language_hint`` steers ``language=multi``; a hint naming English is what this model already does.
LANGUAGE_HINT = LANGUAGE


class Encoding(StrEnum):
    """Raw audio encodings this model decodes (Deepgram's names)."""

    LINEAR16 = "linear16"
    MULAW = "mulaw"
    ALAW = "alaw"


#: Formatting features a ``Configure`` message may switch mid-stream (Deepgram's ``features``).
SWITCHABLE_FEATURES = (
    "dictation",
    "filler_words",
    "numerals",
    "profanity_filter",
    "punctuate",
    "smart_format",
)


@dataclass(frozen=True)
class Formatting:
    """How words become the transcript: every switch applies to interim and final results alike."""

    punctuate: bool = False
    smart_format: bool = False
    numerals: bool = False
    profanity_filter: bool = False
    filler_words: bool = False
    dictation: bool = False
    #: (spoken words, replacement) pairs, in the order given.
    replace: tuple[tuple[str, str], ...] = ()
    redact: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ListenParams:
    """One session's settings, parsed from the upgrade's query string."""

    encoding: Encoding = Encoding.LINEAR16
    sample_rate: int = SAMPLE_RATE
    channels: int = CHANNELS
    multichannel: bool = False
    #: Which of encoding/sample_rate/channels the client set: a WAV header may set the others.
    explicit_format: frozenset[str] = frozenset()
    interim_results: bool = False
    #: Milliseconds of non-speech that end an utterance; None: only Finalize and CloseStream do.
    endpointing_ms: int | None = DEFAULT_ENDPOINTING_MS
    utterance_end_ms: int | None = None
    vad_events: bool = False
    formatting: Formatting = field(default_factory=Formatting)
    tags: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()


#: Parameters accepted only with these values (lower case), and why another value is refused.
OFF_ONLY: dict[str, tuple[frozenset[str], str]] = {
    "detect_entities": (frozenset({"false"}), "this model does not detect entities"),
    "diarize": (frozenset({"false"}), "this model does not tell speakers apart (no diarization)"),
    "alternatives": (frozenset({"1"}), "this model returns one alternative per result"),
}
#: Parameters refused with any value (their presence asks for something this model cannot do).
UNAVAILABLE: dict[str, str] = {
    "callback": "results are only sent over the WebSocket (this endpoint makes no outbound calls)",
    "diarize_model": "this model does not tell speakers apart (no diarization)",
    "diarize_version": "this model does not tell speakers apart (no diarization)",
    "search": "this model has no phonetic search",
    "keywords": "this model cannot boost keywords (its language model is shared and fixed)",
    "keyterm": "this model cannot boost keyterms (its language model is shared and fixed)",
}

PARAMETERS = tuple(
    sorted(
        {
            "alternatives",
            "callback",
            "callback_method",
            "channels",
            "detect_entities",
            "diarize",
            "diarize_model",
            "diarize_version",
            "dictation",
            "encoding",
            "endpointing",
            "extra",
            "filler_words",
            "interim_results",
            "keyterm",
            "keywords",
            "language",
            "language_hint",
            "mip_opt_out",
            "model",
            "multichannel",
            "no_delay",
            "numerals",
            "profanity_filter",
            "punctuate",
            "redact",
            "replace",
            "sample_rate",
            "search",
            "smart_format",
            "tag",
            "utterance_end_ms",
            "vad_events",
            "version",
        }
    )
)
#: Parameters Deepgram lets a client repeat (``redact=pci&redact=ssn``).
REPEATABLE = frozenset(
    {"extra", "keyterm", "keywords", "language_hint", "redact", "replace", "search", "tag"}
)


def parse_listen_query(query: Mapping[str, str]) -> ListenParams:
    """Check every parameter; raise ``QueryError`` (HTTP 400) naming the first bad one."""
    values = _values(query)
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise QueryError(
            f"unknown query parameter(s) {', '.join(unknown)}; Deepgram's live parameters are "
            f"{', '.join(PARAMETERS)}"
        )
    for name, given in values.items():
        if len(given) > 1 and name not in REPEATABLE:
            raise QueryError(f"query parameter {name!r} is given more than once")
    single = {name: given[0] for name, given in values.items() if name not in REPEATABLE}
    for name, reason in UNAVAILABLE.items():
        if name in values:
            raise QueryError(f"{name} is not available: {reason}")
    for name, (allowed, reason) in OFF_ONLY.items():
        if name in single and single[name].lower() not in allowed:
            raise QueryError(f"{name}={single[name]!r} is not available: {reason}")
    _check_names(single, values)

    encoding = _encoding(single.get("encoding"))
    sample_rate = _integer(single, "sample_rate", SAMPLE_RATE)
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise QueryError(
            f"sample_rate={sample_rate} is not supported: any rate from {MIN_SAMPLE_RATE} to "
            f"{MAX_SAMPLE_RATE} Hz is (it is resampled to {SAMPLE_RATE} Hz)"
        )
    channels = _integer(single, "channels", CHANNELS)
    if not 1 <= channels <= MAX_CHANNELS:
        raise QueryError(f"channels={channels} is not supported: 1 to {MAX_CHANNELS} channels are")
    interim_results = _boolean(single, "interim_results", False)
    utterance_end_ms = _utterance_end(single.get("utterance_end_ms"))
    if utterance_end_ms is not None and not interim_results:
        raise QueryError("utterance_end_ms needs interim_results=true (as on Deepgram)")
    for name in ("mip_opt_out", "no_delay"):
        _boolean(single, name, False)  # both values honoured: see the README
    callback_method = single.get("callback_method", "post").lower()
    if callback_method not in ("post", "put"):
        raise QueryError(f"callback_method={single['callback_method']!r} is not valid: must be POST or PUT")
    return ListenParams(
        encoding=encoding,
        sample_rate=sample_rate,
        channels=channels,
        multichannel=_boolean(single, "multichannel", False),
        explicit_format=frozenset({"encoding", "sample_rate", "channels"} & set(single)),
        interim_results=interim_results,
        endpointing_ms=_endpointing(single.get("endpointing")),
        utterance_end_ms=utterance_end_ms,
        vad_events=_boolean(single, "vad_events", False),
        formatting=Formatting(
            punctuate=_boolean(single, "punctuate", False),
            smart_format=_boolean(single, "smart_format", False),
            numerals=_boolean(single, "numerals", False),
            profanity_filter=_boolean(single, "profanity_filter", False),
            filler_words=_boolean(single, "filler_words", False),
            dictation=_boolean(single, "dictation", False),
            replace=tuple(_pair(raw, "replace", allow_empty_value=True) for raw in values.get("replace", [])),
            redact=_redact(values.get("redact", [])),
        ),
        tags=tuple(_tag(raw) for raw in values.get("tag", [])),
        extra=tuple(_pair(raw, "extra", allow_empty_value=False) for raw in values.get("extra", [])),
    )


def _values(query: Mapping[str, str]) -> dict[str, list[str]]:
    if isinstance(query, Query):
        return {name: query.values_of(name) for name in query}
    return {name: [value] for name, value in query.items()}


def _check_names(single: Mapping[str, str], values: Mapping[str, list[str]]) -> None:
    model = single.get("model", "pocketsphinx")
    if model.lower() not in MODEL_NAMES:
        raise QueryError(
            f"model={model!r} is not available: this endpoint serves pocketsphinx, also under Deepgram's "
            f"streaming names ({', '.join(MODEL_FAMILIES)}, each optionally -{'/-'.join(MODEL_VARIANTS)})"
        )
    language = single.get("language", "en")
    if not LANGUAGE.match(language):
        raise QueryError(
            f"language={language!r} is not supported: this model transcribes English "
            "(en, or en-XX for any region, e.g. en-US, en-GB)"
        )
    for hint in values.get("language_hint", []):
        if not LANGUAGE_HINT.match(hint):
            raise QueryError(f"language_hint={hint!r} is not supported: this model transcribes English only")
    version = single.get("version", "latest")
    if version.lower() not in VERSIONS:
        raise QueryError(f"version={version!r} is not available: this endpoint serves version=latest only")


def _encoding(raw: str | None) -> Encoding:
    if raw is None:
        return Encoding.LINEAR16
    try:
        return Encoding(raw.lower())
    except ValueError:
        raise QueryError(
            f"encoding={raw!r} is not supported: this model decodes raw "
            f"{', '.join(encoding.value for encoding in Encoding)} (or a WAV file with a header)"
        ) from None


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


def _utterance_end(raw: str | None) -> int | None:
    if raw is None:
        return None
    milliseconds = _ascii_whole_number(raw)
    if milliseconds is None or not MIN_UTTERANCE_END_MS <= milliseconds <= MAX_UTTERANCE_END_MS:
        raise QueryError(
            f"utterance_end_ms={raw!r} is not valid: must be milliseconds from {MIN_UTTERANCE_END_MS} "
            f"to {MAX_UTTERANCE_END_MS}"
        )
    return milliseconds


def _redact(raws: list[str]) -> frozenset[str]:
    redact: set[str] = set()
    for raw in raws:
        for value in raw.lower().split(","):  # Deepgram also takes redact=pci,ssn
            if value == "false":
                continue
            value = "numbers" if value == "true" else value
            if value not in REDACT_VALUES:
                raise QueryError(
                    f"redact={raw!r} is not supported: this model redacts {', '.join(sorted(REDACT_VALUES))} "
                    "(true means numbers; false redacts nothing)"
                )
            redact.add(value)
    return frozenset(redact)


def _pair(raw: str, name: str, *, allow_empty_value: bool) -> tuple[str, str]:
    """``find:replacement`` (replace) or ``key:value`` (extra)."""
    key, colon, value = raw.partition(":")
    key, value = key.strip(), value.strip()
    if not key or (not colon and not allow_empty_value) or (not value and not allow_empty_value):
        raise QueryError(
            f"{name}={raw!r} is not valid: must be {'term:replacement' if allow_empty_value else 'key:value'}"
        )
    if len(raw) > MAX_TAG_CHARS:
        raise QueryError(f"{name} is over {MAX_TAG_CHARS} characters")
    return key.lower() if name == "replace" else key, value


def _tag(raw: str) -> str:
    if not raw or len(raw) > MAX_TAG_CHARS:
        raise QueryError(f"tag={raw[:40]!r} is not valid: must be 1 to {MAX_TAG_CHARS} characters")
    return raw
