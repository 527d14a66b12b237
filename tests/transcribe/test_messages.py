"""The Deepgram message shapes: control messages in, Results / Metadata / Error out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_server.models.transcribe.formatting import Formatter, Token
from model_server.models.transcribe.messages import (
    ControlMessageError,
    ControlType,
    ModelInfo,
    error_message,
    metadata_message,
    parse_control,
    results_message,
)
from model_server.models.transcribe.params import Formatting
from model_server.models.transcribe.recognizer import Transcript, Word

MODEL = ModelInfo(name="pocketsphinx-en-us", version="5.1.1", arch="pocketsphinx")
FINAL = Transcript(
    start=0.5,
    duration=2.0,
    words=(Word("i", 0.6, 0.7, 0.9), Word("agree", 0.7, 1.2, 0.7)),
    confidence=0.8,
    is_final=True,
    speech_final=True,
    from_finalize=False,
)


@pytest.mark.parametrize("kind", ["KeepAlive", "Finalize", "CloseStream"])
def test_known_control_messages_parse(kind: str) -> None:
    assert parse_control(json.dumps({"type": kind})).type is ControlType(kind)


def test_configure_keeps_its_fields() -> None:
    control = parse_control(json.dumps({"type": "Configure", "features": {"numerals": True}}))
    assert control.type is ControlType.CONFIGURE
    assert control.body["features"] == {"numerals": True}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("CloseStream", "not JSON"),
        ("[1, 2]", 'JSON object with a string "type"'),
        ('{"type": 3}', 'JSON object with a string "type"'),
        ('{"type": "Reconfigure"}', "unknown message type 'Reconfigure'"),
    ],
)
def test_other_text_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ControlMessageError, match=reason):
        parse_control(text)


def formatted(transcript: Transcript, formatting: Formatting) -> list[Token]:
    formatter = Formatter()
    formatter.load()
    return formatter.format(transcript.words, formatting, is_final=transcript.is_final)


def results(transcript: Transcript, formatting: Formatting, **kwargs: object) -> dict[str, object]:
    options: dict[str, object] = {"channel": (0, 1), "request_id": "r1", "model": MODEL, "extra": {}}
    options.update(kwargs)
    return dict(json.loads(results_message(transcript, formatted(transcript, formatting), **options)))  # type: ignore[arg-type]


def test_results_carry_deepgram_fields() -> None:
    message: dict[str, Any] = results(FINAL, Formatting())
    assert message["type"] == "Results"
    assert message["channel_index"] == [0, 1]
    assert (message["start"], message["duration"]) == (0.5, 2.0)
    assert (message["is_final"], message["speech_final"], message["from_finalize"]) == (True, True, False)
    alternative = message["channel"]["alternatives"][0]
    assert alternative["transcript"] == "i agree"
    assert alternative["confidence"] == 0.8
    assert alternative["words"][1] == {
        "word": "agree",
        "start": 0.7,
        "end": 1.2,
        "confidence": 0.7,
        "punctuated_word": "agree",
    }
    assert message["metadata"] == {
        "request_id": "r1",
        "model_info": MODEL.as_json(),
        "model_uuid": MODEL.uuid,
    }


def test_punctuate_gives_sentence_case_and_a_full_stop_on_finals_only() -> None:
    final: dict[str, Any] = results(FINAL, Formatting(punctuate=True))
    assert final["channel"]["alternatives"][0]["transcript"] == "I agree."
    assert [w["punctuated_word"] for w in final["channel"]["alternatives"][0]["words"]] == ["I", "agree."]
    interim = Transcript(0.5, 1.0, FINAL.words, 0.0, False, False, False)
    message: dict[str, Any] = results(interim, Formatting(punctuate=True))
    assert message["channel"]["alternatives"][0]["transcript"] == "I agree"


def test_second_channel_and_extra_appear_as_deepgram_sends_them() -> None:
    message: dict[str, Any] = results(FINAL, Formatting(), channel=(1, 2), extra={"team": "support"})
    assert message["channel_index"] == [1, 2]
    assert message["metadata"]["extra"] == {"team": "support"}


def test_metadata_names_the_model_by_a_stable_uuid() -> None:
    message = json.loads(
        metadata_message(
            request_id="r",
            created="c",
            duration=1.23456,
            sha256="h",
            channels=1,
            model=MODEL,
            extra={},
            tags=[],
        )
    )
    assert message["type"] == "Metadata"
    assert message["duration"] == 1.235
    assert message["channels"] == 1
    assert message["models"] == [MODEL.uuid]
    assert message["model_info"] == {MODEL.uuid: MODEL.as_json()}
    assert ModelInfo("pocketsphinx-en-us", "5.1.1", "pocketsphinx").uuid == MODEL.uuid
    assert ModelInfo("pocketsphinx-en-us", "5.1.2", "pocketsphinx").uuid != MODEL.uuid


def test_error_message_shape() -> None:
    assert json.loads(error_message("bad", variant="DATA-0000")) == {
        "type": "Error",
        "description": "bad",
        "message": "bad",
        "variant": "DATA-0000",
    }


def test_a_schema_error_quotes_the_client_text_back_within_a_bound() -> None:
    error = json.loads(error_message("not JSON", variant="SchemaError", message="x" * 5000))
    assert error["variant"] == "SchemaError" and error["description"] == "not JSON"
    assert error["message"] == "x" * 1024
