"""One WebSocket session: the ``Session`` a model sees, and the loop that feeds its handler.

The loop reads one whole message at a time (aiohttp reassembles fragments and answers pings), awaits
the handler's callback, and only then reads the next message, so a slow model holds back its own
client and no one else. Whatever ends the session (the client, the model, the idle timeout, a bad
frame, a failing model, the drain), the handler's ``on_end`` runs once and one log line records it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Literal

from aiohttp import WSMsgType, web

from model_server.logs import FIELDS
from model_server.model import CloseCode, SessionError, SessionHandler

log = logging.getLogger("model_server.session")

#: RFC 6455 §5.5: a control frame carries at most 125 bytes, 2 of them the close code.
MAX_CLOSE_REASON_BYTES = 123
#: RFC 6455 §7.1.5: the code to report when the connection ended without a Close frame.
ABNORMAL_CLOSURE = 1006
#: RFC 6455 §5.2: 2 bytes, 8 more for a 64-bit length, 4 for a mask (never sent by a server).
MAX_FRAME_HEADER_BYTES = 14


def close_reason_bytes(reason: str) -> bytes:
    """``reason`` as UTF-8, cut to what fits in a Close frame without splitting a character."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return encoded
    return encoded[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore").encode()


class WebSocketSession:
    """The server's side of one WebSocket session (implements ``model_server.model.Session``)."""

    def __init__(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        *,
        path: str,
        model_name: str,
        idle_timeout: float,
        close_timeout: float,
        transport: asyncio.Transport | None,
        request_id: str | None = None,
    ) -> None:
        self._ws = ws
        # Kept to abort the connection when a write never completes: aiohttp's own close only closes the
        # transport, which waits for the unsent bytes a client that stopped reading will never take.
        self._transport = transport
        # The largest frame payload a write can take without pushing an empty buffer past its
        # high-water mark (which pauses the protocol and makes the send wait for the client).
        self._unpaused_frame_bytes = (
            transport.get_write_buffer_limits()[1] - MAX_FRAME_HEADER_BYTES if transport is not None else -1
        )
        self._close_timeout = close_timeout
        self._session_id = uuid.uuid4().hex
        self._path = path
        self._model_name = model_name
        self._idle_timeout = idle_timeout
        self._request_id = request_id
        self._started = time.monotonic()
        self._waiting_since: float | None = None  # loop time the current receive began; None in a callback
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_close: asyncio.Task[None] | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_by = ""
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def path(self) -> str:
        return self._path

    async def send_text(self, text: str) -> None:
        data = text.encode()
        await self._send(data, WSMsgType.TEXT)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data, WSMsgType.BINARY)

    async def _send(self, data: bytes, opcode: WSMsgType) -> None:
        if self._ws.closed:
            # After our Close frame nothing else may go out (RFC 6455 §5.5.1).
            raise ConnectionResetError(f"session {self._session_id} is closed")
        transport = self._transport
        if (
            transport is not None
            and len(data) <= self._unpaused_frame_bytes
            and not transport.get_write_buffer_size()
        ):
            # Nothing is queued and the frame stays under the high-water mark, so the write cannot
            # pause the protocol: aiohttp writes it to the transport and returns without waiting.
            # Arming a deadline here was the largest per-frame cost the server added to the library.
            await self._ws.send_frame(data, opcode)
            self.messages_out += 1
            self.bytes_out += len(data)
            return
        # A client that stops reading fills its TCP window and the write never completes; pings cannot
        # help. Give up after the idle timeout: the session ends with an abort, no one else waits.
        try:
            async with asyncio.timeout(self._idle_timeout):
                await self._ws.send_frame(data, opcode)
        except TimeoutError:
            reason = f"client stopped reading: a send waited {self._idle_timeout:g} s"
            self._note_end(ABNORMAL_CLOSURE, reason, "server")
            self._abort()
            raise ConnectionResetError(f"session {self._session_id}: {reason}") from None
        self.messages_out += 1
        self.bytes_out += len(data)

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """Send a Close frame with ``code`` and wait for the client's; the first close wins.

        The whole handshake, writing our frame included, takes at most the close timeout: aiohttp's
        own timeout starts only once the frame is written, which never happens if the client stopped
        reading, so past the deadline the connection is aborted.
        """
        if self._close_code is None and not self._ws.closed:
            self._close_code, self._close_reason, self._closed_by = int(code), reason, "server"
        await self._close_within_timeout(code, reason)

    async def _close_within_timeout(self, code: CloseCode, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._ws.close(code=int(code), message=close_reason_bytes(reason))
        except TimeoutError:
            self._abort()

    def _abort(self) -> None:
        """Drop the connection at once, unsent bytes and all; a pending write then fails."""
        if self._transport is not None:
            self._transport.abort()

    async def run(self, handler: SessionHandler) -> None:
        """Feed every message to ``handler`` until the session ends, then call ``on_end``."""
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_at(loop.time() + self._idle_timeout, self._check_idle)
        try:
            await self._receive_loop(handler, loop)
        except SessionError as error:
            await self.close(error.code, error.reason)
        except ConnectionError as error:
            # The model sent to a client that has gone; nothing to tell anyone but the log.
            self._note_end(ABNORMAL_CLOSURE, f"connection lost: {error}", "client")
        except Exception:
            log.exception(
                "model failed; closing its session with 1011",
                extra={FIELDS: {"event": "model_error", "session_id": self._session_id, "path": self._path}},
            )
            await self.close(CloseCode.INTERNAL_ERROR, "internal error in the model")
        finally:
            self._idle_timer.cancel()
            await self._end(handler)

    async def _receive_loop(self, handler: SessionHandler, loop: asyncio.AbstractEventLoop) -> None:
        ws = self._ws
        while True:
            self._waiting_since = loop.time()
            message = await ws.receive()
            self._waiting_since = None
            if message.type is WSMsgType.BINARY:
                self.messages_in += 1
                self.bytes_in += len(message.data)
                await handler.on_binary(message.data)
            elif message.type is WSMsgType.TEXT:
                # The server reads text undecoded (decode_text=False) so bytes_in counts bytes.
                self.messages_in += 1
                self.bytes_in += len(message.data)
                try:
                    text = message.data.decode()
                except UnicodeDecodeError:
                    raise SessionError(CloseCode.INVALID_PAYLOAD, "text message is not valid UTF-8") from None
                await handler.on_text(text)
            else:
                self._note_transport_end(message.type, message.data, message.extra)
                return
            if ws.closed:  # the model closed the session from its callback
                return

    def _note_transport_end(self, kind: WSMsgType, data: object, extra: object) -> None:
        if kind is WSMsgType.CLOSE:
            self._note_end(
                int(data) if isinstance(data, int) else ABNORMAL_CLOSURE, str(extra or ""), "client"
            )
        elif kind is WSMsgType.ERROR:
            # A frame the protocol refuses (1009 too big, 1007 bad UTF-8, 1002) or a lost connection.
            code = self._ws.close_code or ABNORMAL_CLOSURE
            self._note_end(code, str(data), "server" if code != ABNORMAL_CLOSURE else "client")
        else:
            self._note_end(self._ws.close_code or ABNORMAL_CLOSURE, "connection closed", "client")

    def _note_end(self, code: int, reason: str, closed_by: str) -> None:
        if self._close_code is None:
            self._close_code, self._close_reason, self._closed_by = code, reason, closed_by

    def _check_idle(self) -> None:
        if self._ws.closed:
            return
        loop = asyncio.get_running_loop()
        waiting_since = self._waiting_since
        if waiting_since is not None and loop.time() - waiting_since >= self._idle_timeout - 0.001:
            self._idle_close = loop.create_task(
                self.close(
                    CloseCode.POLICY_VIOLATION, f"idle timeout: no message for {self._idle_timeout:g} s"
                )
            )
            return
        # Busy in a callback, or a message came meanwhile: look again one timeout after the last wait began.
        start = waiting_since if waiting_since is not None else loop.time()
        self._idle_timer = loop.call_at(start + self._idle_timeout, self._check_idle)

    async def _end(self, handler: SessionHandler) -> None:
        if self._idle_close is not None:
            await asyncio.gather(self._idle_close, return_exceptions=True)
        if not self._ws.closed:
            await self._close_within_timeout(CloseCode.NORMAL, "")
        try:
            await handler.on_end()
        except Exception:
            log.exception(
                "model failed in on_end",
                extra={FIELDS: {"event": "model_error", "session_id": self._session_id, "path": self._path}},
            )
        self.log_end()

    def log_end(self) -> None:
        """Write the one line that records this session: where, how long, how much, how it ended."""
        if self._close_code is None:
            self._note_end(self._ws.close_code or ABNORMAL_CLOSURE, "", "server")
        fields: dict[str, object] = {
            "event": "session_end",
            "session_id": self._session_id,
            "path": self._path,
            "model": self._model_name,
            "duration_s": round(time.monotonic() - self._started, 3),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "close_code": self._close_code,
            "close_reason": self._close_reason,
            "closed_by": self._closed_by,
        }
        if self._request_id:
            fields["request_id"] = self._request_id
        log.info("session ended", extra={FIELDS: fields})
