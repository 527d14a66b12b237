"""Event-stream glue: split the request body into events, read PayloadParts, write response events.

The framing (prelude, headers, CRCs) is the SDK's own ``smithy_aws_event_stream``; this module only
knows which headers the SageMaker runtime API puts on each event.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping

from smithy_aws_event_stream.events import (
    HEADER_VALUE,
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    Event,
    EventMessage,
)
from smithy_aws_event_stream.exceptions import EventError

from bidistream.client import BINARY, COMPLETE, PARTIAL, UTF8, Part

_PRELUDE_LENGTH = 12
_MAX_MESSAGE_LENGTH = _PRELUDE_LENGTH + MAX_HEADERS_LENGTH + MAX_PAYLOAD_LENGTH + 4


class BadEvent(Exception):
    """The client sent bytes that are not a valid event of this API."""


class EventSplitter:
    """Turns arbitrary chunks of an event-stream body into whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[EventMessage]:
        self._buffer += data
        messages: list[EventMessage] = []
        while len(self._buffer) >= _PRELUDE_LENGTH:
            (total_length,) = struct.unpack_from("!I", self._buffer)
            if not 16 <= total_length <= _MAX_MESSAGE_LENGTH:
                raise BadEvent(f"event length {total_length} is out of bounds")
            if len(self._buffer) < total_length:
                break
            messages.append(decode_message(bytes(self._buffer[:total_length])))
            del self._buffer[:total_length]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still waiting for the rest."""
        return len(self._buffer)


def decode_message(data: bytes) -> EventMessage:
    try:
        event = Event.decode(io.BytesIO(data))
    except (EventError, ValueError, struct.error) as error:
        raise BadEvent(f"malformed event: {error}") from None
    if event is None:
        raise BadEvent("empty event")
    return event.message


def read_payload_part(message: EventMessage) -> Part:
    """The ``PayloadPart`` an inner request message carries."""
    headers = message.headers
    kind = (headers.get(":message-type"), headers.get(":event-type"))
    if kind != ("event", "PayloadPart"):
        raise BadEvent(f"expected a PayloadPart event, got {kind!r}")
    data_type = _optional_string(headers, "DataType", (UTF8, BINARY))
    completion_state = _optional_string(headers, "CompletionState", (PARTIAL, COMPLETE))
    return Part(message.payload, data_type, completion_state)


def payload_part_event(part: Part) -> bytes:
    headers: dict[str, HEADER_VALUE] = {":message-type": "event", ":event-type": "PayloadPart"}
    if part.data:
        headers[":content-type"] = "application/octet-stream"
    if part.data_type is not None:
        headers["DataType"] = part.data_type
    if part.completion_state is not None:
        headers["CompletionState"] = part.completion_state
    return EventMessage(headers=headers, payload=part.data).encode()


def exception_event(exception_type: str, fields: dict[str, str]) -> bytes:
    """A modeled stream error (``ModelStreamError``, ``InternalStreamFailure``), as the SDK parses it."""
    headers: dict[str, HEADER_VALUE] = {
        ":message-type": "exception",
        ":exception-type": exception_type,
        ":content-type": "application/json",
    }
    return EventMessage(headers=headers, payload=json.dumps(fields).encode()).encode()


def error_event(code: str, message: str) -> bytes:
    """An unmodeled stream error (e.g. a bad event signature); the SDK raises ``UnmodeledEventError``."""
    headers: dict[str, HEADER_VALUE] = {
        ":message-type": "error",
        ":error-code": code,
        ":error-message": message,
    }
    return EventMessage(headers=headers).encode()


def _optional_string(headers: Mapping[str, HEADER_VALUE], name: str, allowed: tuple[str, ...]) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise BadEvent(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)
