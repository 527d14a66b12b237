"""The TLS + HTTP/2 server of the local endpoint: one connection task, one router task per stream.

``h2`` does the HTTP/2 protocol; this module moves its bytes, keeps flow control honest in both
directions (credit goes back only as the router consumes request data; response data waits for the
client's window) and hands each request stream to ``router.handle_stream``.

Two HTTP/2 details the service's clients depend on:

* A client's graceful GOAWAY (NO_ERROR) ends nothing that is open (RFC 9113 §6.8): Node's HTTP/2
  client, under the JavaScript SDK, sends one right after an event stream's response headers and
  keeps streaming. Open streams run to their end, new ones are refused (REFUSED_STREAM), and the
  connection closes once the last one has ended.
* A response that ends before the request (the container closed first) is complete with its
  END_STREAM; the endpoint then waits for the client's END_STREAM, up to ``close_timeout``, and only
  then resets the stream with NO_ERROR (RFC 9113 §8.1). An immediate reset would complete the CRT
  stream under the Python SDK while it still has its final signed frame to write, and
  ``input_stream.close()`` would then wait forever for a writer that has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

from bidistream.endpoint.router import RouterSettings, StreamReset, handle_stream

logger = logging.getLogger(__name__)

READ_CHUNK = 65536
MAX_CONCURRENT_STREAMS = 100
# HTTP/2's default 64 KiB windows cost a round trip per 64 KiB; these bound what one stream (and one
# connection) may have in flight before the router has passed it on to the container.
DEFAULT_WINDOW = 65535
STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
StreamHandler = Callable[..., Awaitable[None]]


class _GracefulH2Connection(h2.connection.H2Connection):
    """h2's connection, except that a graceful GOAWAY from the client leaves open streams running.

    h2 4.4 moves its connection state machine to CLOSED on any GOAWAY it receives (and drops what it
    had queued to send), after which it refuses the open streams' DATA with a ProtocolError
    (python-hyper/h2 issue 1181). RFC 9113 §6.8 lets streams opened before a GOAWAY complete. For a
    NO_ERROR GOAWAY this reports the ``ConnectionTerminated`` event and keeps the state machine
    open; ``_Connection`` refuses new streams and closes when the open ones have ended. A GOAWAY
    with an error code still closes at once. ``_receive_goaway_frame`` is h2's private handler: h2
    is pinned exactly, and the GOAWAY tests in tests/e2e/test_http2_close.py fail if an upgrade
    bypasses this override.
    """

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[h2.events.Event]]:
        if frame.error_code != h2.errors.ErrorCodes.NO_ERROR:
            return super()._receive_goaway_frame(frame)
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors.ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class _Stream:
    """Both halves of one HTTP/2 stream, as the router sees them."""

    def __init__(self, connection: _Connection, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._chunks: asyncio.Queue[bytes | StreamReset] = asyncio.Queue()
        self.ended_remotely = False
        self.ended_locally = False
        self.reset = False
        self.finished_remotely = asyncio.Event()  # END_STREAM or RST_STREAM from the client
        self.unconsumed = 0  # bytes received that the router has not consumed (its flow-control credit)

    # RequestBody
    async def read(self) -> bytes:
        item = await self._chunks.get()
        if isinstance(item, StreamReset):
            self._chunks.put_nowait(item)  # every later read sees it too
            raise item
        return item

    def consumed(self, size: int) -> None:
        self.unconsumed -= size
        self._connection.acknowledge(self.stream_id, size)

    # ResponseChannel
    async def send_headers(self, headers: list[tuple[str, str]], *, end_stream: bool = False) -> None:
        await self._connection.send_headers(self, headers, end_stream=end_stream)

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        await self._connection.send_data(self, data, end_stream=end_stream)

    async def end(self) -> None:
        await self._connection.end_stream(self)

    # fed by the connection
    def received(self, data: bytes) -> None:
        self.unconsumed += len(data)
        self._chunks.put_nowait(data)

    def remote_ended(self) -> None:
        self.ended_remotely = True
        self.finished_remotely.set()
        self._chunks.put_nowait(b"")

    def remote_reset(self) -> None:
        self.reset = True
        self.finished_remotely.set()
        self._chunks.put_nowait(StreamReset())


class _Connection:
    """One client connection: reads frames, dispatches streams, writes what h2 queues."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: StreamHandler,
        settings: RouterSettings,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._settings = settings
        self._h2 = _GracefulH2Connection(
            h2.config.H2Configuration(
                client_side=False, header_encoding="utf-8", validate_inbound_headers=True
            )
        )
        self._streams: dict[int, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._window_changed = asyncio.Condition()
        self._closed = False
        self._draining = False  # the client sent a graceful GOAWAY: finish open streams, then close
        self._last_accepted = 0  # the highest stream id handed to the router, for our GOAWAY

    async def run(self) -> None:
        limits = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        }
        self._h2.local_settings = h2.settings.Settings(client=False, initial_values=limits)
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        await self._flush()
        try:
            while not self._closed:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.ProtocolError as error:
                    logger.warning("HTTP/2 protocol error from client: %s", error)
                    await self._flush()
                    break
                for event in events:
                    await self._dispatch(event)
                await self._flush()
        except (OSError, ssl.SSLError):
            pass
        finally:
            self._closed = True
            for stream in self._streams.values():
                if not stream.ended_remotely:
                    stream.remote_reset()
            async with self._window_changed:
                self._window_changed.notify_all()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _dispatch(self, event: h2.events.Event) -> None:
        match event:
            case h2.events.RequestReceived(stream_id=stream_id) if stream_id is not None and self._draining:
                logger.info("refused stream %d: the client sent GOAWAY before opening it", stream_id)
                self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            case h2.events.RequestReceived(stream_id=stream_id, headers=headers) if stream_id is not None:
                stream = _Stream(self, stream_id)
                self._streams[stream_id] = stream
                self._last_accepted = stream_id
                task = asyncio.create_task(self._run_stream(stream, _header_map(headers or [])))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            case h2.events.DataReceived(stream_id=stream_id, data=data, flow_controlled_length=length):
                stream_or_none = self._streams.get(stream_id or 0)
                if stream_or_none is None or stream_or_none.ended_locally:
                    # Nobody will consume it: give the credit back at once.
                    self.acknowledge(stream_id or 0, length or 0)
                elif data:
                    stream_or_none.received(data)
                    padding = (length or 0) - len(data)
                    if padding:
                        self.acknowledge(stream_or_none.stream_id, padding)
                elif length:
                    self.acknowledge(stream_or_none.stream_id, length)
            case h2.events.StreamEnded(stream_id=stream_id):
                if (ended := self._streams.get(stream_id or 0)) is not None:
                    ended.remote_ended()
            case h2.events.StreamReset(stream_id=stream_id):
                if (reset := self._streams.get(stream_id or 0)) is not None:
                    reset.remote_reset()
            case h2.events.WindowUpdated() | h2.events.RemoteSettingsChanged():
                async with self._window_changed:
                    self._window_changed.notify_all()
            case h2.events.ConnectionTerminated(error_code=h2.errors.ErrorCodes.NO_ERROR):
                logger.info("client sent GOAWAY; %d open stream(s) continue", len(self._streams))
                self._draining = True
                if not self._streams:
                    await self._close_gracefully()
            case h2.events.ConnectionTerminated():
                self._closed = True

    async def _run_stream(self, stream: _Stream, headers: dict[str, str]) -> None:
        try:
            await self._handler(
                method=headers.get(":method", ""),
                path=headers.get(":path", ""),
                headers=headers,
                body=stream,
                response=stream,
                settings=self._settings,
            )
        finally:
            await self.end_stream(stream)
            # What the router never read (a 403 or 424 before the body, a container gone first) still
            # counts against the connection's window: give it back, or the connection stalls for good.
            self.acknowledge(stream.stream_id, stream.unconsumed)
            stream.unconsumed = 0
            await self._await_request_end(stream)
            self._streams.pop(stream.stream_id, None)
            if self._draining and not self._streams:
                await self._close_gracefully()

    async def _await_request_end(self, stream: _Stream) -> None:
        """After a complete response, let the client end its side (see the module docstring)."""
        if self._closed or stream.finished_remotely.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stream.finished_remotely.wait(), self._settings.close_timeout)
            return
        if self._closed:
            return
        logger.info("stream %d: the client did not end its request; resetting (NO_ERROR)", stream.stream_id)
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        with contextlib.suppress(OSError):
            await self._flush()

    async def _close_gracefully(self) -> None:
        """Every stream open at the client's GOAWAY has ended: answer with ours and close. Its last
        stream id is the last stream served, not a refused one (RFC 9113 §6.8)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(last_stream_id=self._last_accepted)
        with contextlib.suppress(OSError):
            await self._flush()
        self._writer.close()  # ends the read loop

    def acknowledge(self, stream_id: int, size: int) -> None:
        if self._closed or size <= 0:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.acknowledge_received_data(size, stream_id)
        self._write_pending()

    async def send_headers(
        self, stream: _Stream, headers: list[tuple[str, str]], *, end_stream: bool
    ) -> None:
        self._check_open(stream)
        self._h2.send_headers(stream.stream_id, headers, end_stream=end_stream)
        stream.ended_locally = end_stream
        await self._flush()

    async def send_data(self, stream: _Stream, data: bytes, *, end_stream: bool) -> None:
        view = memoryview(data)
        while True:
            self._check_open(stream)
            window = min(
                self._h2.local_flow_control_window(stream.stream_id), self._h2.max_outbound_frame_size
            )
            if window <= 0 and view:
                async with self._window_changed:
                    await self._window_changed.wait()
                continue
            chunk, view = view[:window], view[window:]
            last = end_stream and not view
            self._h2.send_data(stream.stream_id, bytes(chunk), end_stream=last)
            await self._flush()
            if not view:
                stream.ended_locally = end_stream
                return

    async def end_stream(self, stream: _Stream) -> None:
        if self._closed or stream.ended_locally or stream.reset:
            return
        stream.ended_locally = True
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.end_stream(stream.stream_id)
        with contextlib.suppress(OSError):
            await self._flush()

    def _check_open(self, stream: _Stream) -> None:
        if self._closed or stream.reset:
            raise StreamReset()
        if stream.ended_locally:
            raise RuntimeError(f"stream {stream.stream_id} already ended")

    def _write_pending(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _flush(self) -> None:
        self._write_pending()
        await self._writer.drain()


def _header_map(headers: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    """One value per name (h2 decodes them as UTF-8); a repeated field's values joined with "," as
    SigV4 canonicalises them, so that a value added beside a signed one breaks the signature
    instead of silently replacing it."""
    fields: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = str(raw_name), str(raw_value)
        fields[name] = f"{fields[name]},{value}" if name in fields else value
    return fields


class LocalEndpoint:
    """The local SageMaker runtime endpoint: ``start()``, then ``serve_forever()`` or ``close()``."""

    def __init__(
        self,
        settings: RouterSettings,
        ssl_context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 8443,
        handler: StreamHandler = handle_stream,
    ) -> None:
        self._settings = settings
        self._ssl = ssl_context
        self._host = host
        self._port = port
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self._host, self._port, ssl=self._ssl)
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening, close every connection and return once their streams have ended (each
        router closes its container socket within ``close_timeout``): the server's own
        ``wait_closed`` waits only for the sockets."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await asyncio.gather(*self._connections.values(), return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            writer.close()  # the runtime speaks HTTP/2 only
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections[writer] = task
        try:
            await _Connection(reader, writer, self._handler, self._settings).run()
        finally:
            del self._connections[writer]
