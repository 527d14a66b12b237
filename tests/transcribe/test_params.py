"""The v1/listen query: Deepgram's names accepted, anything unknown or invalid refused with a reason."""

from __future__ import annotations

import pytest

from model_server.model import QueryError
from model_server.models.transcribe.params import DEFAULT_ENDPOINTING_MS, ListenParams, parse_listen_query

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
    assert params.interim_results and params.punctuate
    assert params.endpointing_ms == 500


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"smart_format": "true"}, "unknown query parameter(s) smart_format"),
        ({"encoding": "mulaw"}, "encoding='mulaw' is not supported"),
        ({"sample_rate": "8000"}, "sample_rate=8000 is not supported"),
        ({"sample_rate": "16k"}, "sample_rate='16k' is not valid"),
        ({"channels": "2"}, "channels=2 is not supported"),
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
