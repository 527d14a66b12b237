"""Models that exist only to drive the server's failure paths in tests (mounted with EXTRA_ROUTES)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

from model_server.model import CloseCode, Model, QueryError, Session, SessionError, SessionHandler

#: The query parameters QueryModel accepts.
KNOWN_PARAMETERS = {"model", "language", "sample_rate"}


class QueryHandler(SessionHandler):
    """Sends the parsed query back as JSON, then echoes text."""

    def __init__(self, session: Session, params: dict[str, str]) -> None:
        self._session = session
        self._params = params

    async def on_text(self, text: str) -> None:
        if text == "params":
            await self._session.send_text(json.dumps({"path": self._session.path, "params": self._params}))
        elif text == "end":
            await self._session.close(CloseCode.NORMAL, "done")
        else:
            await self._session.send_text(text)


class QueryModel(Model):
    """Accepts only KNOWN_PARAMETERS; ``sample_rate`` must be an integer."""

    name = "query"

    def parse_query(self, query: Mapping[str, str]) -> object:
        unknown = sorted(set(query) - KNOWN_PARAMETERS)
        if unknown:
            raise QueryError(f"unknown parameter: {', '.join(unknown)}")
        if "sample_rate" in query and not query["sample_rate"].isdigit():
            raise QueryError(f"sample_rate must be an integer, got {query['sample_rate']!r}")
        return dict(query)

    def open_session(self, session: Session, params: object) -> SessionHandler:
        assert isinstance(params, dict)
        return QueryHandler(session, params)


class BinaryOnlyHandler(SessionHandler):
    """Takes audio only: a text message ends the session with 1003 (the base class's default)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def on_binary(self, data: bytes) -> None:
        await self._session.send_bytes(data)


class BinaryOnlyModel(Model):
    name = "binary-only"

    def open_session(self, session: Session, params: object) -> SessionHandler:
        return BinaryOnlyHandler(session)


class FailingHandler(SessionHandler):
    """Echoes text; "crash" raises a plain exception (1011), "bad" and "verbose" a SessionError (1007)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def on_text(self, text: str) -> None:
        if text == "crash":
            raise RuntimeError("the model fell over")
        if text == "bad":
            raise SessionError(CloseCode.INVALID_PAYLOAD, "expected JSON")
        if text == "verbose":
            raise SessionError(
                CloseCode.INVALID_PAYLOAD, "é" * 100
            )  # 200 bytes: more than a Close frame holds
        await self._session.send_text(text)


class FailingModel(Model):
    name = "failing"

    def open_session(self, session: Session, params: object) -> SessionHandler:
        return FailingHandler(session)


class QuickIdleModel(Model):
    """Sets its own idle timeout, as the speech model does (Deepgram closes after 10 s of silence)."""

    name = "quick-idle"
    idle_timeout = 0.3

    def open_session(self, session: Session, params: object) -> SessionHandler:
        return BinaryOnlyHandler(session)


class GatedLoadModel(Model):
    """``load`` returns only once the file named by $LOAD_GATE exists, so a test holds /ping at 503."""

    name = "gated"

    def load(self) -> None:
        gate = os.environ["LOAD_GATE"]
        while not os.path.exists(gate):
            time.sleep(0.01)  # runs in the server's loader thread, polling the test's gate

    def open_session(self, session: Session, params: object) -> SessionHandler:
        return BinaryOnlyHandler(session)


class HealthFlagModel(Model):
    """``healthy`` is False while the file named by $UNHEALTHY_FLAG exists, so a test sets /ping's answer."""

    name = "health-flag"

    def healthy(self) -> bool:
        return not os.path.exists(os.environ["UNHEALTHY_FLAG"])

    def open_session(self, session: Session, params: object) -> SessionHandler:
        return BinaryOnlyHandler(session)


class BrokenLoadModel(Model):
    name = "broken"

    def load(self) -> None:
        raise OSError("weights file is missing")

    def open_session(self, session: Session, params: object) -> SessionHandler:
        raise AssertionError("never opened")
