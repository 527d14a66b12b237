"""The WebSocket upgrade's query string (what a client sets as ``ModelQueryString``), parsed for a model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import parse_qsl

from model_server.model import QueryError

#: ModelQueryString is at most 2048 characters, so a few hundred fields is already absurd.
MAX_QUERY_FIELDS = 256


class Query(Mapping[str, str]):
    """The query's keys in order, each with every value it was given.

    As a mapping it gives a key's one value, and refuses (``QueryError``, HTTP 400) a key given more
    than once: for a single-valued parameter, guessing which of two wins would hide a client's
    mistake. A model whose parameter may repeat (Deepgram's ``keywords=a&keywords=b``) reads all of
    its values with ``values``.
    """

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> str:
        values = self._values[key]
        if len(values) > 1:
            raise QueryError(f"query parameter {key!r} is given more than once")
        return values[0]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def values_of(self, key: str) -> list[str]:
        """Every value of ``key`` in the order given; empty if it is absent."""
        return list(self._values.get(key, ()))


def parse_query(raw: str) -> Query:
    """Parse a raw (still percent-encoded) query; ``QueryError`` for a malformed one."""
    if not raw:
        return Query([])
    try:
        pairs = parse_qsl(
            raw, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise QueryError(f"malformed query string: {error}") from None
    return Query(pairs)
