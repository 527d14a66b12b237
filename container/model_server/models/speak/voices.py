"""The voices ``model=`` names: ours, and Deepgram's Aura names mapped to the nearest of ours.

Deepgram's English Aura voices (``aura-*-en``, ``aura-2-*-en``) are accepted so a client written for
Deepgram works unchanged: each maps to a local voice of the same gender and the nearest accent
espeak-ng has (American, or British received pronunciation for British, Irish and Australian
voices). The ``Metadata`` message names the voice that really speaks. Aura voices of other languages
are refused: this model speaks English only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from model_server.models.speak.engine import EspeakVoice

#: espeak-ng's default speed is 175 words a minute; a little slower is clearer on a phone line.
WORDS_PER_MINUTE = 160
DEFAULT_PITCH = 50


class Gender(StrEnum):
    FEMALE = "feminine"
    MALE = "masculine"


class Accent(StrEnum):
    AMERICAN = "American"
    BRITISH = "British"


@dataclass(frozen=True)
class Voice:
    """A local voice: its name in ``model=``, who it sounds like, and how espeak-ng makes it."""

    name: str
    gender: Gender
    accent: Accent
    espeak: EspeakVoice


def _voice(name: str, gender: Gender, accent: Accent, espeak_name: str) -> Voice:
    return Voice(name, gender, accent, EspeakVoice(espeak_name, WORDS_PER_MINUTE, DEFAULT_PITCH))


#: The variants were chosen by round-trip word error rate through this container's v1/listen
#: (see the README's "Text to speech" section).
VOICES: dict[str, Voice] = {
    voice.name: voice
    for voice in (
        _voice("espeak-us-female", Gender.FEMALE, Accent.AMERICAN, "en-us+f5"),
        _voice("espeak-us-male", Gender.MALE, Accent.AMERICAN, "en-us+klatt4"),
        _voice("espeak-gb-female", Gender.FEMALE, Accent.BRITISH, "en-gb-x-rp+f2"),
        _voice("espeak-gb-male", Gender.MALE, Accent.BRITISH, "en-gb-x-rp+klatt4"),
    )
}

_F, _M = Gender.FEMALE, Gender.MALE
_US, _GB = Accent.AMERICAN, Accent.BRITISH
#: Deepgram's English Aura voices: gender and accent as Deepgram describes each (Irish and
#: Australian voices take the British local voice, Filipino the American).
AURA_VOICES: dict[str, tuple[Gender, Accent]] = {
    "aura-asteria-en": (_F, _US),
    "aura-luna-en": (_F, _US),
    "aura-stella-en": (_F, _US),
    "aura-athena-en": (_F, _GB),
    "aura-hera-en": (_F, _US),
    "aura-orion-en": (_M, _US),
    "aura-arcas-en": (_M, _US),
    "aura-perseus-en": (_M, _US),
    "aura-angus-en": (_M, _GB),
    "aura-orpheus-en": (_M, _US),
    "aura-helios-en": (_M, _GB),
    "aura-zeus-en": (_M, _US),
    **{
        f"aura-2-{name}-en": (_F, _US)
        for name in (
            "amalthea", "andromeda", "asteria", "athena", "aurora", "callista", "cora", "cordelia",
            "delia", "electra", "harmonia", "helena", "hera", "iris", "juno", "luna", "minerva",
            "ophelia", "phoebe", "selene", "thalia", "vesta",
        )
    },
    **{
        f"aura-2-{name}-en": (_M, _US)
        for name in (
            "apollo", "arcas", "aries", "atlas", "hermes", "janus", "jupiter", "mars", "neptune",
            "odysseus", "orion", "orpheus", "pluto", "saturn", "zeus",
        )
    },
    "aura-2-draco-en": (_M, _GB),
    "aura-2-hyperion-en": (_M, _GB),
    "aura-2-pandora-en": (_F, _GB),
    "aura-2-theia-en": (_F, _GB),
}  # fmt: skip

#: What a session speaks with when the query names no model (Deepgram's default is Asteria).
DEFAULT_MODEL = "aura-asteria-en"


class UnknownVoice(ValueError):
    """``model=`` names no voice this model has; the message names the choices."""


def resolve(model: str) -> Voice:
    """The local voice for a ``model=`` value (ours or Deepgram's, case-insensitive)."""
    name = model.strip().lower()
    if name in VOICES:
        return VOICES[name]
    if name in AURA_VOICES:
        gender, accent = AURA_VOICES[name]
        return next(voice for voice in VOICES.values() if (voice.gender, voice.accent) == (gender, accent))
    if name.startswith("aura-") and not name.endswith("-en"):
        raise UnknownVoice(
            f"model={model!r} is not available: this endpoint speaks English only "
            f"(an English aura voice such as aura-2-thalia-en, or one of {', '.join(VOICES)})"
        )
    raise UnknownVoice(
        f"model={model!r} is not available: choose one of {', '.join(VOICES)}, "
        f"or a Deepgram English voice: {', '.join(AURA_VOICES)}"
    )
