"""The model interface: what a model implements to sit behind the streaming server.

A ``Model`` is loaded once per process. For every WebSocket session the server calls
``Model.open_session`` with a ``Session`` (the server's side of the connection) and the parsed query
string; the returned ``SessionHandler`` then receives every message of that session, in order, one at a
time (the server awaits each callback before reading the next frame, so a slow model applies
back-pressure to its own client and to no one else).

The server owns the transport: pings and pongs, frame size limits, idle timeouts, draining and the
session limit. A model only sees whole messages (a fragmented message arrives reassembled) and decides
what to answer and when to close.

The echo model (``model_server.models.echo``) is the reference implementation of this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol


class CloseCode(IntEnum):
    """WebSocket close codes (RFC 6455 §7.4.1) a client of this server can act on."""

    NORMAL = 1000  # the model finished the session
    GOING_AWAY = 1001  # the server is draining; reconnect elsewhere
    UNSUPPORTED_DATA = 1003  # a frame type (text or binary) the model does not take
    INVALID_PAYLOAD = 1007  # the payload is not what the model accepts
    POLICY_VIOLATION = 1008  # e.g. the idle timeout
    MESSAGE_TOO_BIG = 1009  # a message over the size limit
    INTERNAL_ERROR = 1011  # the model failed
    TRY_AGAIN_LATER = 1013  # the server, or the route's model, is at its session limit


class QueryError(ValueError):
    """Raised by ``Model.parse_query`` to refuse the WebSocket upgrade with HTTP 400 and this reason."""


class SessionError(Exception):
    """Raised by a ``SessionHandler`` to end its session with a specific close code and reason.

    Any other exception a handler raises ends the session with 1011 (internal error); either way only
    that one session is affected.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session(Protocol):
    """The server's side of one WebSocket session, as a model sees it.

    Sending on a closed session (the model closed it, or the client has gone) raises
    ``ConnectionError``, and so does a send the client has not taken within the idle timeout (it
    stopped reading; the server aborts the connection). A handler may let it propagate, and the server
    ends the session quietly.
    """

    @property
    def session_id(self) -> str:
        """A unique id for logs and for the model's own metadata (e.g. a request id)."""
        ...

    @property
    def path(self) -> str:
        """The request path without the query, e.g. ``/v1/listen``."""
        ...

    async def send_text(self, text: str) -> None:
        """Send one text frame (the client receives a ``PayloadPart`` with ``DataType=UTF8``)."""
        ...

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary frame (the client receives a ``PayloadPart`` with ``DataType=BINARY``)."""
        ...

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the session; no callback of the handler is called after this returns."""
        ...


class SessionHandler:
    """One session's model state. Callbacks are awaited one at a time, in frame order.

    A handler overrides the callbacks for the message types its model takes; a message of a type it
    does not override ends the session with 1003 (unsupported data).
    """

    async def on_text(self, text: str) -> None:
        """A whole text message arrived."""
        raise SessionError(CloseCode.UNSUPPORTED_DATA, f"{type(self).__name__} takes no text messages")

    async def on_binary(self, data: bytes) -> None:
        """A whole binary message arrived."""
        raise SessionError(CloseCode.UNSUPPORTED_DATA, f"{type(self).__name__} takes no binary messages")

    async def on_end(self) -> None:
        """The session is over (the client closed, went away, idled out or the server drains).

        Release what the session holds here. The connection may already be gone: do not send.
        """


class InvocationError(Exception):
    """Raised by ``Model.invoke`` to answer ``POST /invocations`` with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InvocationResult:
    """The answer to one ``POST /invocations`` request."""

    body: bytes
    content_type: str


class Model(ABC):
    """A model behind one invocation path. Loaded once, serves many sessions."""

    #: Short name used in logs and metadata.
    name: str = "model"
    #: Seconds a session may go without a message from the client before the server closes it with
    #: 1008 (policy violation). None: the server's ``IDLE_TIMEOUT_SECONDS``.
    idle_timeout: float | None = None
    #: Sessions this model serves at once; more are closed with 1013 (try again later), as at the
    #: server's ``MAX_SESSIONS``. Set it when a session holds much memory. None: only the server's cap.
    max_sessions: int | None = None

    def load(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Load weights and other slow state. Runs once, off the event loop, before ``/ping`` is 200."""

    def healthy(self) -> bool:
        """Whether the loaded model can still serve; while it says no, ``/ping`` answers 503 and
        SageMaker replaces the instance. Called on the event loop at every ping: answer at once."""
        return True

    def parse_query(self, query: Mapping[str, str]) -> object:
        """Validate the query string (``ModelQueryString``) at the upgrade.

        Reading a key given more than once from ``query`` raises ``QueryError`` (400); a model whose
        parameter may repeat reads every value with ``model_server.query.Query.values_of``. Return
        whatever parsed form ``open_session`` wants; raise ``QueryError`` to refuse the upgrade with
        HTTP 400. The default accepts no parameters at all.
        """
        if query:
            raise QueryError(f"{self.name} takes no query parameters, got: {', '.join(sorted(query))}")
        return None

    @abstractmethod
    def open_session(self, session: Session, params: object) -> SessionHandler:
        """Create the handler for a new session (``params`` is what ``parse_query`` returned)."""

    def invoke(self, body: bytes, content_type: str) -> InvocationResult:
        """Answer one request/response call (``POST /invocations``). Runs off the event loop."""
        raise InvocationError(501, f"{self.name} does not serve /invocations")
