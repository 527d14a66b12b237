"""The JSON messages of Deepgram's live ``v1/listen`` API, as this model sends and reads them.

Shapes follow Deepgram's streaming responses (``Results``, ``Metadata``, ``Error``) so a client written
for Deepgram Nova-3 on SageMaker reads them unchanged. Where this model has no value Deepgram would
send (an interim word's confidence: pocketsphinx computes posteriors only when an utterance ends), the
field is present with 0.0 rather than missing or invented.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum

from model_server.models.transcribe.recognizer import Transcript, Word

MODEL_NAME = "pocketsphinx-en-us"
MODEL_ARCH = "pocketsphinx"
#: Deepgram identifies a model by a UUID; this one is derived from the name and version, so it is stable.
MODEL_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # uuid.NAMESPACE_URL


class ControlType(StrEnum):
    """The control messages a client sends as text frames."""

    KEEP_ALIVE = "KeepAlive"
    FINALIZE = "Finalize"
    CLOSE_STREAM = "CloseStream"


class ControlMessageError(ValueError):
    """A text frame that is not a control message this model knows."""


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


def parse_control(text: str) -> ControlType:
    """The type of a control message; ``ControlMessageError`` says what is wrong with any other text."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ControlMessageError(f"text message is not JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ControlMessageError('text message must be a JSON object with a string "type"')
    try:
        return ControlType(message["type"])
    except ValueError:
        known = ", ".join(control.value for control in ControlType)
        raise ControlMessageError(
            f"unknown message type {message['type']!r}; expected one of {known}"
        ) from None


def results_message(transcript: Transcript, *, request_id: str, model: ModelInfo, punctuate: bool) -> str:
    """A ``Results`` message for one interim or final transcript."""
    words = [_word_json(word, index, transcript, punctuate) for index, word in enumerate(transcript.words)]
    text = " ".join(str(word["punctuated_word"]) for word in words) if punctuate else transcript.text
    return json.dumps(
        {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(transcript.duration, 3),
            "start": round(transcript.start, 3),
            "is_final": transcript.is_final,
            "speech_final": transcript.speech_final,
            "from_finalize": transcript.from_finalize,
            "channel": {
                "alternatives": [
                    {"transcript": text, "confidence": round(transcript.confidence, 4), "words": words}
                ]
            },
            "metadata": {"request_id": request_id, "model_info": model.as_json(), "model_uuid": model.uuid},
        }
    )


def metadata_message(*, request_id: str, created: str, duration: float, sha256: str, model: ModelInfo) -> str:
    """The ``Metadata`` message sent after the last results of a closed stream."""
    return json.dumps(
        {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": request_id,
            "sha256": sha256,
            "created": created,
            "duration": round(duration, 3),
            "channels": 1,
            "models": [model.uuid],
            "model_info": {model.uuid: model.as_json()},
        }
    )


def error_message(description: str, *, variant: str) -> str:
    """An ``Error`` message: the session goes on unless it is followed by a close."""
    return json.dumps(
        {"type": "Error", "description": description, "message": description, "variant": variant}
    )


def _word_json(word: Word, index: int, transcript: Transcript, punctuate: bool) -> dict[str, object]:
    result: dict[str, object] = {
        "word": word.text,
        "start": word.start,
        "end": word.end,
        "confidence": round(word.confidence, 4),
    }
    if punctuate:
        result["punctuated_word"] = _punctuated(word.text, index, len(transcript.words), transcript.is_final)
    return result


def _punctuated(text: str, index: int, count: int, is_final: bool) -> str:
    """Sentence case and a closing full stop: all the punctuation an n-gram decoder can honestly add."""
    if text == "i" or text.startswith("i'"):
        text = "I" + text[1:]
    if index == 0:
        text = text[:1].upper() + text[1:]
    if is_final and index == count - 1:
        text += "."
    return text
