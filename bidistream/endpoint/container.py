"""The WebSocket to the model container, frame by frame, as SageMaker's sidecar opens it.

Frame-level on purpose: one PayloadPart is one frame, and ``CompletionState`` is the FIN bit, so the
router needs each frame with its FIN bit, which high-level WebSocket clients hide. The protocol itself
(handshake, masking, control frames, close handshake) is ``websockets``' sans-I/O ``ClientProtocol``;
this module only moves its bytes over an asyncio connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bidistream.client import BINARY, COMPLETE, PARTIAL, UTF8, Part
from bidistream.tasks import wait_cancelled

READ_CHUNK: Final = 65536
MAX_FRAME_SIZE: Final = 16 * 1024 * 1024  # an event-stream payload cannot carry more
FRAME_QUEUE: Final = 64  # frames read ahead of the client; beyond this, TCP back-pressure on the container
ABNORMAL_CLOSURE: Final = 1006


class UpgradeRefused(Exception):
    """The container did not accept the WebSocket (connection refused, HTTP error status, timeout)."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Closed:
    """The WebSocket is closed; ``code``/``reason`` are the container's close frame (1006 if none)."""

    code: int
    reason: str
    by_container: bool


class ContainerSocket:
    """One WebSocket session with the container."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
        early_frames: Sequence[Frame] = (),
    ):
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        self._frames: asyncio.Queue[Part] = asyncio.Queue(FRAME_QUEUE)
        self._closed = asyncio.Event()
        self._outcome: Closed | None = None
        self._awaiting_pong = False
        self._incoming_type: str | None = None  # data type of the fragmented message being received
        self._sending_message = False  # a fragmented message to the container is in progress
        self._close_initiated_here = False
        self._reader_task = asyncio.create_task(self._read_loop(list(early_frames)))

    @classmethod
    async def connect(cls, model_url: str, resource: str, *, limit: float) -> ContainerSocket:
        """Open ``<model_url><resource>`` (``ws://`` or ``http://``); raises ``UpgradeRefused``."""
        url = model_url.rstrip("/").replace("http://", "ws://", 1) + resource
        uri = parse_uri(url)
        protocol = ClientProtocol(uri, max_size=MAX_FRAME_SIZE)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(uri.host, uri.port)
                protocol.send_request(protocol.connect())
                for data in protocol.data_to_send():
                    writer.write(data)
                await writer.drain()
                response, early_frames = await _read_handshake(reader, protocol)
        except TimeoutError:
            _close_quietly(writer)  # the TCP connection may be open with the upgrade unanswered
            raise UpgradeRefused(f"no WebSocket upgrade from {url} within {limit:g}s") from None
        except OSError as error:
            _close_quietly(writer)
            raise UpgradeRefused(f"cannot connect to {url}: {error.strerror or error}") from None
        if protocol.handshake_exc is not None:
            writer.close()
            if isinstance(protocol.handshake_exc, InvalidStatus) and response is not None:
                body = bytes(response.body).decode(errors="replace").strip()
                raise UpgradeRefused(
                    f"{url} refused the WebSocket upgrade with HTTP {response.status_code}",
                    status=response.status_code,
                    body=body or None,
                )
            raise UpgradeRefused(f"{url} answered with an invalid handshake: {protocol.handshake_exc}")
        return cls(reader, writer, protocol, early_frames)

    async def receive(self) -> Part | Closed:
        """The next data frame as a Part (FIN bit as CompletionState), or ``Closed`` once the socket is.

        Frames that arrived before the close are all delivered first.
        """
        while True:
            if not self._frames.empty():
                return self._frames.get_nowait()
            if self._outcome is not None:
                return self._outcome
            getter = asyncio.ensure_future(self._frames.get())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                return getter.result()

    async def send(self, part: Part) -> None:
        """One PayloadPart → one frame: DataType picks text/binary, PARTIAL leaves FIN unset."""
        if self._protocol.state is not State.OPEN:
            return  # closing: the close outcome is reported through receive()
        fin = part.completion_state != PARTIAL
        if self._sending_message:
            self._protocol.send_continuation(part.data, fin=fin)
        elif part.data_type == UTF8:
            self._protocol.send_text(part.data, fin=fin)
        else:
            self._protocol.send_binary(part.data, fin=fin)
        self._sending_message = not fin
        await self._flush()

    async def keepalive(self, interval: float, max_missed: int) -> int:
        """Ping every ``interval`` seconds; return the number missed once ``max_missed`` go unanswered."""
        missed = 0
        while True:
            await asyncio.sleep(interval)
            if self._protocol.state is not State.OPEN:
                await self._closed.wait()
                return missed
            missed = missed + 1 if self._awaiting_pong else 0
            if missed >= max_missed:
                return missed
            self._awaiting_pong = True
            self._protocol.send_ping(os.urandom(4))
            await self._flush()

    async def close(self, code: int, reason: str, *, limit: float) -> None:
        """Start the close handshake, wait (bounded) for the container's answer, then drop the TCP socket."""
        if self._protocol.state is State.OPEN:
            self._close_initiated_here = True
            self._protocol.send_close(code, reason)
            with contextlib.suppress(OSError):
                await self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), limit)
        await self.abort()

    async def abort(self) -> None:
        self._reader_task.cancel()
        await wait_cancelled(self._reader_task)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def _read_loop(self, early_frames: list[Frame]) -> None:
        try:
            # Frames that came in the same read as the 101 (a container greeting on open) go first.
            for frame in early_frames:
                await self._on_frame(frame)
            await self._flush()
            while True:
                data = await self._reader.read(READ_CHUNK)
                if data:
                    self._protocol.receive_data(data)
                else:
                    self._protocol.receive_eof()
                for event in self._protocol.events_received():
                    if isinstance(event, Frame):
                        await self._on_frame(event)
                await self._flush()  # pongs and the close reply the protocol queued
                if not data or self._protocol.state is State.CLOSED:
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            close = self._protocol.close_rcvd
            self._outcome = Closed(
                code=close.code if close is not None else ABNORMAL_CLOSURE,
                reason=close.reason if close is not None else "connection lost without a close frame",
                by_container=not self._close_initiated_here,
            )
            self._closed.set()

    async def _on_frame(self, frame: Frame) -> None:
        match frame.opcode:
            case Opcode.TEXT | Opcode.BINARY:
                self._incoming_type = UTF8 if frame.opcode is Opcode.TEXT else BINARY
                await self._frames.put(Part(bytes(frame.data), self._incoming_type, _state(frame)))
            case Opcode.CONT:
                await self._frames.put(Part(bytes(frame.data), self._incoming_type, _state(frame)))
            case Opcode.PONG:
                self._awaiting_pong = False

    async def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._writer.write(data)
            elif self._writer.can_write_eof():
                with contextlib.suppress(OSError):
                    self._writer.write_eof()
        await self._writer.drain()


def _close_quietly(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


def _state(frame: Frame) -> str:
    return COMPLETE if frame.fin else PARTIAL


async def _read_handshake(
    reader: asyncio.StreamReader, protocol: ClientProtocol
) -> tuple[Response | None, list[Frame]]:
    """The upgrade response, and the frames parsed from the same bytes after it (not to be lost)."""
    while True:
        data = await reader.read(READ_CHUNK)
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        events = protocol.events_received()
        for index, event in enumerate(events):
            if isinstance(event, Response):
                return event, [frame for frame in events[index + 1 :] if isinstance(frame, Frame)]
        if not data:
            return None, []
