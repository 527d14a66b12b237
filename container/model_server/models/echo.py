"""The echo model: the reference implementation of the model interface.

Every message comes back unchanged and with its type kept: a text frame is answered with the same
text frame, a binary frame with the same bytes. ``POST /invocations`` answers with the request body.
It is what the SageMaker bidirectional-streaming sample container does, and what the smoke test
checks after every deployment.

What a model needs, in the order the server uses it:

1. ``Model.load`` (not needed here) runs once, off the event loop, before ``/ping`` answers 200.
2. ``Model.parse_query`` checks the upgrade's query string; the inherited one accepts none, so
   ``?anything`` is refused with HTTP 400 and a reason.
3. ``Model.open_session`` returns one ``SessionHandler`` per WebSocket session.
4. The handler's ``on_text`` / ``on_binary`` receive whole messages, one at a time, in order; a
   handler that leaves one out refuses that message type with close code 1003.
5. ``on_end`` (not needed here) releases what the session held, however the session ended.
"""

from __future__ import annotations

from model_server.model import InvocationResult, Model, Session, SessionHandler


class EchoSession(SessionHandler):
    """Sends each message straight back on the same session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def on_text(self, text: str) -> None:
        await self._session.send_text(text)

    async def on_binary(self, data: bytes) -> None:
        await self._session.send_bytes(data)


class EchoModel(Model):
    """Echoes every message; takes no query parameters; uses the server's idle timeout."""

    name = "echo"

    def open_session(self, session: Session, params: object) -> SessionHandler:
        return EchoSession(session)

    def invoke(self, body: bytes, content_type: str) -> InvocationResult:
        return InvocationResult(body=body, content_type=content_type or "application/octet-stream")
