"""The JSON messages of Deepgram's live ``v1/listen`` API, as this model sends and reads them.

Shapes follow Deepgram's streaming responses (``Results``, ``SpeechStarted``, ``UtteranceEnd``,
``ConfigureSuccess``/``ConfigureFailure``, ``Metadata``, ``Error``), field for field as deepgram-sdk's
typed models have them, so a client written for Deepgram Nova-3 on SageMaker reads them unchanged.
Where this model has no value Deepgram would send (an interim word's confidence: pocketsphinx computes
posteriors only when an utterance ends), the field is present with 0.0 rather than missing or invented.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from model_server.models.transcribe.formatting import Token, transcript_text
from model_server.models.transcribe.recognizer import Transcript

MODEL_NAME = "pocketsphinx-en-us"
MODEL_ARCH = "pocketsphinx"
#: Deepgram identifies a model by a UUID; this one is derived from the name and version, so it is stable.
MODEL_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # uuid.NAMESPACE_URL


class ControlType(StrEnum):
    """The control messages a client sends as text frames."""

    KEEP_ALIVE = "KeepAlive"
    FINALIZE = "Finalize"
    CLOSE_STREAM = "CloseStream"
    CONFIGURE = "Configure"


class ConfigureFailureCode(StrEnum):
    """Deepgram's reasons for refusing a ``Configure``."""

    KEYTERMS_NOT_SUPPORTED = "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
    INTERNAL_ERROR = "CONFIGURE_INTERNAL_ERROR"


class ControlMessageError(ValueError):
    """A text frame that is not a control message this model knows."""


@dataclass(frozen=True)
class Control:
    """A parsed control message; ``body`` is the whole JSON object (Configure's fields live there)."""

    type: ControlType
    body: dict[str, Any]


@dataclass(frozen=True)
class ModelInfo:
    """What the ``metadata`` of every result and the closing ``Metadata`` message name."""

    name: str
    version: str
    arch: str

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(MODEL_NAMESPACE, f"{self.arch}/{self.name}/{self.version}"))

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


def parse_control(text: str) -> Control:
    """A control message; ``ControlMessageError`` says what is wrong with any other text."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ControlMessageError(f"text message is not JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ControlMessageError('text message must be a JSON object with a string "type"')
    try:
        return Control(ControlType(message["type"]), message)
    except ValueError:
        known = ", ".join(control.value for control in ControlType)
        raise ControlMessageError(
            f"unknown message type {message['type']!r}; expected one of {known}"
        ) from None


def results_message(
    transcript: Transcript,
    tokens: Sequence[Token],
    *,
    channel: tuple[int, int],
    request_id: str,
    model: ModelInfo,
    extra: dict[str, str],
) -> str:
    """A ``Results`` message for one interim or final transcript (``tokens``: its formatted words)."""
    metadata: dict[str, object] = {
        "request_id": request_id,
        "model_info": model.as_json(),
        "model_uuid": model.uuid,
    }
    if extra:
        metadata["extra"] = extra
    return json.dumps(
        {
            "type": "Results",
            "channel_index": list(channel),
            "duration": round(transcript.duration, 3),
            "start": round(transcript.start, 3),
            "is_final": transcript.is_final,
            "speech_final": transcript.speech_final,
            "from_finalize": transcript.from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript_text(tokens),
                        "confidence": round(transcript.confidence, 4),
                        "words": [_word_json(token) for token in tokens],
                    }
                ]
            },
            "metadata": metadata,
        }
    )


def speech_started_message(*, channel: tuple[int, int], timestamp: float) -> str:
    """``SpeechStarted`` (``vad_events=true``): speech began at ``timestamp`` seconds of the stream."""
    return json.dumps({"type": "SpeechStarted", "channel": list(channel), "timestamp": timestamp})


def utterance_end_message(*, channel: tuple[int, int], last_word_end: float) -> str:
    """``UtteranceEnd`` (``utterance_end_ms``): no word for that long after ``last_word_end``."""
    return json.dumps({"type": "UtteranceEnd", "channel": list(channel), "last_word_end": last_word_end})


def configure_success_message(*, request_id: str, keyterms: list[str] | None) -> str:
    message: dict[str, object] = {"type": "ConfigureSuccess", "request_id": request_id}
    if keyterms is not None:
        message["keyterms"] = keyterms
    return json.dumps(message)


def configure_failure_message(*, request_id: str, code: ConfigureFailureCode, description: str) -> str:
    return json.dumps(
        {"type": "ConfigureFailure", "request_id": request_id, "code": code.value, "description": description}
    )


def metadata_message(
    *,
    request_id: str,
    created: str,
    duration: float,
    sha256: str,
    channels: int,
    model: ModelInfo,
    extra: dict[str, str],
    tags: list[str],
) -> str:
    """The ``Metadata`` message sent after the last results of a closed stream."""
    message: dict[str, object] = {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": created,
        "duration": round(duration, 3),
        "channels": channels,
        "models": [model.uuid],
        "model_info": {model.uuid: model.as_json()},
    }
    if extra:
        message["extra"] = extra
    if tags:
        message["tags"] = tags
    return json.dumps(message)


#: Deepgram's ``Error.variant`` for a client text message it could not parse.
SCHEMA_ERROR = "SchemaError"
#: How much of an unparsable client message an ``Error`` quotes back.
MAX_QUOTED_CHARS = 1024


def error_message(description: str, *, variant: str, message: str | None = None) -> str:
    """An ``Error`` message: the session goes on unless it is followed by a close.

    ``message``: for a ``SchemaError``, the client's text that could not be parsed (as Deepgram sends
    it); otherwise the description again.
    """
    quoted = description if message is None else message[:MAX_QUOTED_CHARS]
    return json.dumps({"type": "Error", "description": description, "message": quoted, "variant": variant})


def _word_json(token: Token) -> dict[str, object]:
    return {
        "word": token.word,
        "start": token.start,
        "end": token.end,
        "confidence": round(token.confidence, 4),
        "punctuated_word": token.punctuated,
    }
