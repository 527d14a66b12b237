"""The ``v1/speak`` query parameters, named and checked as Deepgram's streaming text-to-speech names them.

Deepgram's SDK sends four: ``model``, ``encoding``, ``sample_rate`` and ``mip_opt_out``. Each is
honoured; anything else (including the REST-only ``container``, ``bit_rate`` and ``callback``) is
refused with HTTP 400 and a reason, as ``v1/listen`` does, so a typo never passes silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from model_server.model import QueryError
from model_server.models.speak.audio import Encoding
from model_server.models.speak.voices import DEFAULT_MODEL, UnknownVoice, Voice, resolve

PARAMETERS = ("encoding", "mip_opt_out", "model", "sample_rate")
#: Deepgram's REST-only options: named separately so the 400 says why they do not apply.
REST_ONLY = ("bit_rate", "callback", "callback_method", "container")
#: Deepgram's sample rates for each streaming encoding, the default first.
SAMPLE_RATES: dict[Encoding, tuple[int, ...]] = {
    Encoding.LINEAR16: (24000, 8000, 16000, 32000, 48000),
    Encoding.MULAW: (8000, 16000),
    Encoding.ALAW: (8000, 16000),
}


@dataclass(frozen=True)
class SpeakParams:
    """One session's settings, parsed from the upgrade's query string."""

    voice: Voice
    model: str  # the name the client asked for (or the default), for the Metadata message
    encoding: Encoding = Encoding.LINEAR16
    sample_rate: int = 24000
    #: Deepgram's Model Improvement Program opt-out. Honoured trivially: nothing is ever kept.
    mip_opt_out: bool = False


def parse_speak_query(query: Mapping[str, str]) -> SpeakParams:
    """Check every parameter; raise ``QueryError`` (HTTP 400) naming the first bad one."""
    rest_only = sorted(set(query) & set(REST_ONLY))
    if rest_only:
        raise QueryError(
            f"{', '.join(rest_only)} applies to Deepgram's REST v1/speak only; the streaming API takes "
            f"{', '.join(PARAMETERS)}"
        )
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        raise QueryError(
            f"unknown query parameter(s) {', '.join(unknown)}; v1/speak takes {', '.join(PARAMETERS)}"
        )
    model = query.get("model", DEFAULT_MODEL)
    try:
        voice = resolve(model)
    except UnknownVoice as error:
        raise QueryError(str(error)) from None
    raw_encoding = query.get("encoding", Encoding.LINEAR16.value)
    try:
        encoding = Encoding(raw_encoding.lower())
    except ValueError:
        raise QueryError(
            f"encoding={raw_encoding!r} is not supported: the streaming API sends "
            f"{', '.join(encoding.value for encoding in Encoding)}"
        ) from None
    rates = SAMPLE_RATES[encoding]
    sample_rate = _sample_rate(query.get("sample_rate"), rates[0])
    if sample_rate not in rates:
        raise QueryError(
            f"sample_rate={sample_rate} is not supported with encoding={encoding.value}: "
            f"choose {', '.join(str(rate) for rate in sorted(rates))} (default {rates[0]})"
        )
    return SpeakParams(
        voice=voice,
        model=model,
        encoding=encoding,
        sample_rate=sample_rate,
        mip_opt_out=_boolean(query, "mip_opt_out", False),
    )


def _sample_rate(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() takes other scripts' digits, and int() reads some of them.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise QueryError(f"sample_rate={raw!r} is not valid: must be a whole number of hertz")
    return int(raw)


def _boolean(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise QueryError(f"{name}={raw!r} is not valid: must be true or false")
    return raw.lower() == "true"
