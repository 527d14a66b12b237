"""The v1/listen query: Deepgram's names accepted, anything unknown or invalid refused with a reason."""

from __future__ import annotations

import json
import re

import pytest

from model_server.model import QueryError
from model_server.models.transcribe.params import (
    DEFAULT_ENDPOINTING_MS,
    PARAMETERS,
    Encoding,
    ListenParams,
    parse_listen_query,
)
from model_server.query import parse_query
from tests.support.processes import REPO_ROOT
from tests.transcribe.conftest import deepgram_sdk

#: What Deepgram's live documentation adds to the SDK's ``listen.v1.connect`` keywords.
LIVE_DOCS_EXTRA = ["filler_words", "no_delay", "alternatives", "diarize_version"]
PIPECAT_DEFAULT = (
    "detect_entities=false&diarize=false&dictation=false&interim_results=true&numerals=false&punctuate=true"
    "&smart_format=false&model=nova-3&language=en&encoding=linear16&channels=1&multichannel=false"
    "&sample_rate=16000"
)

#: Numbers in another script's digits: str.isdigit() is true and int() reads them, but a client that
#: sends them has a bug worth hearing about.
ARABIC_INDIC_16000 = "\u0661\u0666\u0660\u0660\u0660"
ARABIC_INDIC_500 = "\u0665\u0660\u0660"


def test_no_parameters_means_linear16_at_16_khz_without_interim_results() -> None:
    assert parse_listen_query({}) == ListenParams()


def test_deepgram_client_query_is_accepted() -> None:
    params = parse_listen_query(
        {
            "model": "nova-3",
            "language": "en-US",
            "encoding": "linear16",
            "sample_rate": "16000",
            "channels": "1",
            "interim_results": "true",
            "punctuate": "true",
            "endpointing": "500",
        }
    )
    assert params.interim_results and params.formatting.punctuate
    assert params.endpointing_ms == 500


def test_every_deepgram_live_parameter_is_known_by_name() -> None:
    sdk_keywords = json.loads(deepgram_sdk("connect-keywords"))
    assert len(sdk_keywords) >= 30  # deepgram-sdk 7.17's listen.v1.connect
    assert sorted(sdk_keywords + LIVE_DOCS_EXTRA) == sorted(PARAMETERS)


def test_pipecat_default_query_is_accepted() -> None:
    params = parse_listen_query(parse_query(PIPECAT_DEFAULT))
    assert params.interim_results and params.formatting.punctuate
    assert not (params.formatting.numerals or params.formatting.smart_format or params.multichannel)


def test_telephony_and_browser_audio_formats_are_accepted() -> None:
    mulaw = parse_listen_query({"encoding": "mulaw", "sample_rate": "8000"})
    assert (mulaw.encoding, mulaw.sample_rate) == (Encoding.MULAW, 8000)
    alaw = parse_listen_query({"encoding": "ALAW", "sample_rate": "8000"})
    assert alaw.encoding is Encoding.ALAW
    browser = parse_listen_query({"sample_rate": "48000", "channels": "2", "multichannel": "true"})
    assert (browser.sample_rate, browser.channels, browser.multichannel) == (48000, 2, True)
    assert browser.explicit_format == {"sample_rate", "channels"}


def test_repeated_parameters_collect_every_value() -> None:
    params = parse_listen_query(
        parse_query("redact=pci&redact=ssn&replace=a:b&replace=c%20d:e&tag=x&tag=y&extra=k:v&extra=k2:v2")
    )
    assert params.formatting.redact == {"pci", "ssn"}
    assert params.formatting.replace == (("a", "b"), ("c d", "e"))
    assert params.tags == ("x", "y")
    assert params.extra == (("k", "v"), ("k2", "v2"))
    assert parse_listen_query(parse_query("redact=true")).formatting.redact == {"numbers"}


def test_a_single_valued_parameter_given_twice_is_refused() -> None:
    with pytest.raises(QueryError, match="'model' is given more than once"):
        parse_listen_query(parse_query("model=nova-3&model=nova-2"))


@pytest.mark.parametrize(
    "model", ["pocketsphinx", "nova-3", "nova-3-general", "nova-2-phonecall", "base", "general"]
)
def test_deepgram_streaming_model_names_are_served_by_pocketsphinx(model: str) -> None:
    parse_listen_query({"model": model})


@pytest.mark.parametrize("language", ["en", "en-US", "en-GB", "en-au", "EN-IN"])
def test_english_of_any_region_is_accepted(language: str) -> None:
    parse_listen_query({"language": language})


@pytest.mark.parametrize(
    "query",
    [
        {"diarize": "false", "detect_entities": "false", "alternatives": "1"},
        {"mip_opt_out": "true", "no_delay": "true", "version": "latest", "callback_method": "POST"},
        {"filler_words": "true", "dictation": "true", "profanity_filter": "true", "vad_events": "true"},
        {"interim_results": "true", "utterance_end_ms": "1000", "language_hint": "en"},
    ],
)
def test_off_values_and_honoured_features_are_accepted(query: dict[str, str]) -> None:
    parse_listen_query(query)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"smart_formatting": "true"}, "unknown query parameter(s) smart_formatting"),
        ({"encoding": "opus"}, "encoding='opus' is not supported"),
        ({"sample_rate": "7999"}, "sample_rate=7999 is not supported"),
        ({"sample_rate": "96000"}, "sample_rate=96000 is not supported"),
        ({"sample_rate": "16k"}, "sample_rate='16k' is not valid"),
        ({"channels": "9"}, "channels=9 is not supported"),
        ({"channels": "0"}, "channels=0 is not supported"),
        ({"diarize": "true"}, "diarize='true' is not available"),
        ({"detect_entities": "true"}, "detect_entities='true' is not available"),
        ({"diarize_model": "v1"}, "diarize_model is not available"),
        ({"keywords": "pizza:2"}, "keywords is not available"),
        ({"keyterm": "pizza"}, "keyterm is not available"),
        ({"search": "pizza"}, "search is not available"),
        ({"callback": "https://example.com/hook"}, "callback is not available"),
        ({"alternatives": "2"}, "alternatives='2' is not available"),
        ({"redact": "phi"}, "redact='phi' is not supported"),
        ({"version": "2024-01-01"}, "version='2024-01-01' is not available"),
        ({"language_hint": "fr"}, "language_hint='fr' is not supported"),
        ({"utterance_end_ms": "1000"}, "utterance_end_ms needs interim_results=true"),
        ({"interim_results": "true", "utterance_end_ms": "10"}, "utterance_end_ms='10' is not valid"),
        ({"extra": "novalue"}, "extra='novalue' is not valid"),
        ({"language": "en-us-x"}, "language='en-us-x' is not supported"),
        ({"model": "whisper-large"}, "nova-3, nova-2, nova, enhanced, base"),
        ({"model": "nova-3-phonecalls"}, "model='nova-3-phonecalls' is not available"),
        ({"interim_results": "yes"}, "interim_results='yes' is not valid"),
        ({"punctuate": "1"}, "punctuate='1' is not valid"),
        ({"model": "whisper-large"}, "model='whisper-large' is not available"),
        ({"language": "fr"}, "language='fr' is not supported"),
        ({"endpointing": "0"}, "endpointing='0' is not valid"),
        ({"endpointing": "soon"}, "endpointing='soon' is not valid"),
        ({"sample_rate": "¹"}, "sample_rate='¹' is not valid"),
        ({"sample_rate": ARABIC_INDIC_16000}, f"sample_rate={ARABIC_INDIC_16000!r} is not valid"),
        ({"sample_rate": "0" * 5000}, "sample_rate='000"),  # past int()'s digit limit
        ({"channels": "¹"}, "channels='¹' is not valid"),
        ({"endpointing": "²"}, "endpointing='²' is not valid"),
        ({"endpointing": ARABIC_INDIC_500}, f"endpointing={ARABIC_INDIC_500!r} is not valid"),
        ({"endpointing": "9" * 5000}, "endpointing='999"),
    ],
)
def test_bad_parameter_is_refused_with_its_name(query: dict[str, str], reason: str) -> None:
    with pytest.raises(QueryError) as refused:
        parse_listen_query(query)
    assert reason in str(refused.value)


def test_endpointing_false_leaves_utterance_ends_to_the_client() -> None:
    assert parse_listen_query({"endpointing": "false"}).endpointing_ms is None
    assert parse_listen_query({"endpointing": "true"}).endpointing_ms == DEFAULT_ENDPOINTING_MS


def test_the_readme_table_says_what_happens_to_every_parameter() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split("### Live speech to text (`v1/listen`)")[1])[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split(" | ")[0])}
    assert documented == set(PARAMETERS)
