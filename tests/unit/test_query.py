"""The upgrade's query string: every value of a repeated key kept, a single read of one refused."""

from __future__ import annotations

import pytest

from model_server.model import QueryError
from model_server.query import parse_query


def test_values_of_keeps_every_value_in_order() -> None:
    query = parse_query("redact=pci&model=nova-3&redact=ssn&tag=a%20b")
    assert list(query) == ["redact", "model", "tag"]
    assert query.values_of("redact") == ["pci", "ssn"]
    assert query.values_of("absent") == []
    assert query["tag"] == "a b"


def test_reading_a_repeated_key_as_one_value_is_refused() -> None:
    query = parse_query("model=a&model=b")
    assert "model" in query and len(query) == 1
    with pytest.raises(QueryError, match="'model' is given more than once"):
        query["model"]
    with pytest.raises(QueryError, match="more than once"):
        dict(query)


def test_malformed_query_is_refused() -> None:
    with pytest.raises(QueryError, match="malformed query string"):
        parse_query("model")
    assert dict(parse_query("")) == {}
