"""The JSON messages of Deepgram's streaming ``v1/speak``, as this model reads and sends them.

Field names and types follow deepgram-sdk's typed speak models (``SpeakV1Text``, ``SpeakV1Flush``,
``SpeakV1Clear``, ``SpeakV1Close`` in; ``SpeakV1Metadata``, ``SpeakV1Flushed``, ``SpeakV1Cleared``,
``SpeakV1Warning`` out). ``Error`` has the shape ``v1/listen`` sends (Deepgram's common error response).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum

#: Deepgram's limit on one Speak message's text.
MAX_SPEAK_CHARACTERS = 2000
#: The ``Error`` variant for a text message that cannot be taken, as ``v1/listen`` sends it.
SCHEMA_ERROR = "SchemaError"
#: How much of an unparsable client message an ``Error`` quotes back (as on ``v1/listen``).
MAX_QUOTED_CHARS = 1024
#: Deepgram identifies a model by a UUID; ours is derived from the name and version, so it is stable.
MODEL_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # uuid.NAMESPACE_URL


class ControlType(StrEnum):
    """The messages a client sends as text frames."""

    SPEAK = "Speak"
    FLUSH = "Flush"
    CLEAR = "Clear"
    CLOSE = "Close"


class MessageError(ValueError):
    """A text frame that is not a message this model takes; the session goes on."""


@dataclass(frozen=True)
class Control:
    type: ControlType
    text: str = ""  # Speak only


def parse_message(raw: str) -> Control:
    """The client's message; ``MessageError`` says what is wrong with anything else."""
    try:
        message = json.loads(raw)
    except json.JSONDecodeError as error:
        raise MessageError(f"text message is not JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise MessageError('text message must be a JSON object with a string "type"')
    try:
        kind = ControlType(message["type"])
    except ValueError:
        known = ", ".join(control.value for control in ControlType)
        raise MessageError(f"unknown message type {message['type']!r}; expected one of {known}") from None
    if kind is not ControlType.SPEAK:
        return Control(kind)
    text = message.get("text")
    if not isinstance(text, str):
        raise MessageError('a Speak message needs a string "text"')
    if len(text) > MAX_SPEAK_CHARACTERS:
        raise MessageError(
            f"Speak text is {len(text)} characters; at most {MAX_SPEAK_CHARACTERS} per Speak message "
            "(split it over several)"
        )
    return Control(kind, text)


@dataclass(frozen=True)
class ModelInfo:
    """What the ``Metadata`` message names: the voice that really speaks, and the engine's version."""

    name: str
    version: str

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(MODEL_NAMESPACE, f"espeak-ng/{self.name}/{self.version}"))


def metadata_message(*, request_id: str, model: ModelInfo) -> str:
    return json.dumps(
        {
            "type": "Metadata",
            "request_id": request_id,
            "model_name": model.name,
            "model_version": model.version,
            "model_uuid": model.uuid,
        }
    )


def flushed_message(sequence_id: int) -> str:
    return json.dumps({"type": "Flushed", "sequence_id": sequence_id})


def cleared_message(sequence_id: int) -> str:
    return json.dumps({"type": "Cleared", "sequence_id": sequence_id})


def warning_message(code: str, description: str) -> str:
    return json.dumps({"type": "Warning", "description": description, "code": code})


def error_message(description: str, *, variant: str, message: str | None = None) -> str:
    """An ``Error`` message: the session goes on unless a close follows it.

    ``message``: for a ``SchemaError``, the client's text that could not be taken (cut to
    ``MAX_QUOTED_CHARS``); otherwise the description again.
    """
    quoted = description if message is None else message[:MAX_QUOTED_CHARS]
    return json.dumps({"type": "Error", "description": description, "message": quoted, "variant": variant})
