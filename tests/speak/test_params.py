"""The v1/speak query, parsed without a server: defaults, Deepgram names, and the text splitter."""

from __future__ import annotations

import pytest

from model_server.model import QueryError
from model_server.models.speak.audio import Encoding
from model_server.models.speak.model import SpeakModel
from model_server.models.speak.params import parse_speak_query
from model_server.models.speak.text import MAX_SENTENCE_CHARACTERS, SentenceBuffer
from model_server.models.speak.voices import AURA_VOICES, VOICES
from model_server.settings import SettingsError


def test_defaults_are_deepgrams() -> None:
    params = parse_speak_query({})

    assert (params.encoding, params.sample_rate, params.mip_opt_out) == (Encoding.LINEAR16, 24000, False)
    assert params.voice.name == "espeak-us-female"  # aura-asteria-en, Deepgram's default


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_defaults_to_8000_hz(encoding: str) -> None:
    assert parse_speak_query({"encoding": encoding}).sample_rate == 8000


def test_every_english_aura_voice_maps_to_a_local_voice_of_its_gender_and_accent() -> None:
    for name, (gender, accent) in AURA_VOICES.items():
        voice = parse_speak_query({"model": name}).voice
        assert (voice.gender, voice.accent) == (gender, accent), name
    assert len(AURA_VOICES) == 12 + 41  # Aura's and Aura-2's English voices in deepgram-sdk's SpeakV1Model


def test_the_unknown_voice_error_names_every_choice() -> None:
    with pytest.raises(QueryError) as refused:
        parse_speak_query({"model": "nobody"})

    for name in [*VOICES, *AURA_VOICES]:
        assert name in str(refused.value)


def test_model_names_are_case_insensitive() -> None:
    assert parse_speak_query({"model": "Aura-2-Thalia-EN"}).voice.name == "espeak-us-female"


@pytest.mark.parametrize(
    ("variable", "value"), [("SPEAK_MAX_SESSIONS", "0"), ("SPEAK_IDLE_TIMEOUT_SECONDS", "soon")]
)
def test_a_bad_setting_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable}='{value}' is not valid"):
        SpeakModel({variable: value})


def test_sentences_come_out_as_they_complete_and_flush_takes_the_rest() -> None:
    buffer = SentenceBuffer()
    taken = []
    for token in ["Hello", " there.", " How are", " you? I am", " fine"]:
        buffer.append(token)
        taken.append(buffer.complete_sentences())

    assert taken == [[], [], ["Hello there."], ["How are you?"], []]
    assert buffer.rest() == ["I am fine"]
    assert len(buffer) == 0


def test_a_run_without_a_sentence_end_is_cut_at_a_space() -> None:
    buffer = SentenceBuffer()
    buffer.append("word " * 200)

    sentences = buffer.complete_sentences()

    assert sentences and all(len(sentence) <= MAX_SENTENCE_CHARACTERS for sentence in sentences)
    assert all(sentence.endswith("word") for sentence in sentences)
