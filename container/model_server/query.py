"""The WebSocket upgrade's query string (what a client sets as ``ModelQueryString``), parsed for a model."""

from __future__ import annotations

from urllib.parse import parse_qsl

from model_server.model import QueryError

#: ModelQueryString is at most 2048 characters, so a few hundred fields is already absurd.
MAX_QUERY_FIELDS = 256


def parse_query(raw: str) -> dict[str, str]:
    """Parse a raw (still percent-encoded) query into one value per key.

    Raises ``QueryError`` for a malformed query or a repeated key: a model's parameters are single
    values, and guessing which of two wins would hide a client's mistake.
    """
    if not raw:
        return {}
    try:
        pairs = parse_qsl(
            raw, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise QueryError(f"malformed query string: {error}") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query:
            raise QueryError(f"query parameter {key!r} is given more than once")
        query[key] = value
    return query
