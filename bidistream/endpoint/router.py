"""One bidirectional stream: the client's HTTP/2 request ↔ one WebSocket to the container.

What SageMaker's router and sidecar do, per the developer guide: check the request, open
``ws://<container>/<ModelInvocationPath>?<ModelQueryString>``, turn each PayloadPart into one frame
(DataType → text/binary, CompletionState → FIN) and each container frame back into a PayloadPart,
report a container close as ``ModelStreamError`` (close code and reason), a refused upgrade as a
424 ``ModelError``, and ping the container, closing after too many unanswered pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from bidistream.endpoint import api
from bidistream.endpoint.container import ABNORMAL_CLOSURE, Closed, ContainerSocket, UpgradeRefused
from bidistream.endpoint.eventstream import (
    BadEvent,
    EventSplitter,
    decode_message,
    error_event,
    exception_event,
    payload_part_event,
    read_payload_part,
)
from bidistream.endpoint.sigv4 import Credentials, EventSignatureChain, SignatureError, verify_request

logger = logging.getLogger(__name__)

GOING_AWAY: Final = 1001
INTERNAL_ERROR: Final = 1011
NORMAL_CLOSURE: Final = 1000


@dataclass(frozen=True)
class RouterSettings:
    """How the local endpoint reaches and watches the container."""

    model_url: str
    credentials: Credentials
    ping_interval: float = 60.0  # seconds, as SageMaker
    max_missed_pongs: int = 5
    connect_timeout: float = 5.0  # seconds for TCP connect + WebSocket upgrade
    close_timeout: float = 5.0  # seconds to wait for the container's close reply, and for the client
    # to end its request once the response has ended (then RST_STREAM NO_ERROR)


class StreamReset(Exception):
    """The client reset its HTTP/2 stream."""


class RequestBody(Protocol):
    """The request body of one HTTP/2 stream, with flow-control credit returned as it is consumed."""

    async def read(self) -> bytes:
        """The next chunk; b"" once the client ended the stream. Raises ``StreamReset``."""
        ...

    def consumed(self, size: int) -> None: ...


class ResponseChannel(Protocol):
    """The response side of one HTTP/2 stream."""

    async def send_headers(self, headers: list[tuple[str, str]], *, end_stream: bool = False) -> None: ...

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None: ...

    async def end(self) -> None: ...


class _HeadersTracked:
    """A ResponseChannel that remembers whether the response headers went out."""

    def __init__(self, channel: ResponseChannel) -> None:
        self._channel = channel
        self.headers_sent = False

    async def send_headers(self, headers: list[tuple[str, str]], *, end_stream: bool = False) -> None:
        self.headers_sent = True  # even if sending fails: the stream may be half-answered
        await self._channel.send_headers(headers, end_stream=end_stream)

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        await self._channel.send_data(data, end_stream=end_stream)

    async def end(self) -> None:
        await self._channel.end()


@dataclass
class _Outcome:
    """How the stream ended, for the one log line and for the tests' eyes on stderr."""

    text: str = "open"
    parts_in: int = 0
    parts_out: int = 0


async def handle_stream(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: RequestBody,
    response: ResponseChannel,
    settings: RouterSettings,
) -> None:
    """Serve one InvokeEndpointWithBidirectionalStream request to its end; never raises."""
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    outcome = _Outcome()
    response = _HeadersTracked(response)
    try:
        await _serve(method, path, dict(headers), body, response, settings, request_id, outcome)
    except api.ApiError as error:
        outcome.text = f"{error.status} {error.error_type}: {error.body}"
        error_headers, payload = error.response(request_id)
        with contextlib.suppress(Exception):
            await response.send_headers(error_headers)
            await response.send_data(payload, end_stream=True)
    except StreamReset:
        outcome.text += " (client reset the stream)"
    except Exception as error:
        logger.exception("stream %s failed", request_id)
        outcome.text = f"internal error: {type(error).__name__}: {error}"
        # Never a bare end: before the 200 the client gets a 500, after it an error event, so that
        # a failure never looks like a stream that ended normally.
        with contextlib.suppress(Exception):
            if not response.headers_sent:
                error_headers, payload = api.internal_failure().response(request_id)
                await response.send_headers(error_headers)
                await response.send_data(payload, end_stream=True)
            else:
                message = f"the endpoint failed while streaming (request {request_id})"
                await response.send_data(exception_event("InternalStreamFailure", {"Message": message}))
        with contextlib.suppress(Exception):
            await response.end()
    finally:
        logger.info(
            "stream %s %s: %s; parts in %d, out %d; %.3fs",
            request_id,
            path,
            outcome.text,
            outcome.parts_in,
            outcome.parts_out,
            time.monotonic() - started,
        )


async def _serve(
    method: str,
    path: str,
    headers: dict[str, str],
    body: RequestBody,
    response: ResponseChannel,
    settings: RouterSettings,
    request_id: str,
    outcome: _Outcome,
) -> None:
    # Authenticate first: an unsigned caller gets a 403, never a detailed 400 about its request.
    try:
        signed = verify_request(method=method, path=path, headers=headers, credentials=settings.credentials)
    except SignatureError as error:
        raise api.access_denied(error.error_type, error.message) from None
    request = api.parse_request(method, path, headers)
    try:
        socket = await ContainerSocket.connect(
            settings.model_url, request.container_resource, limit=settings.connect_timeout
        )
    except UpgradeRefused as error:
        raise api.model_error(
            f"Failed to establish WebSocket connection: {error.message}",
            original_status=error.status,
            original_message=error.body,
        ) from None

    await response.send_headers(
        [
            (":status", "200"),
            ("content-type", api.EVENT_STREAM_CONTENT_TYPE),
            ("x-amzn-invoked-production-variant", request.variant),
            ("x-amzn-requestid", request_id),
        ]
    )
    chain = EventSignatureChain(signed, settings.credentials)
    upstream = asyncio.create_task(_client_to_container(body, chain, socket, outcome))
    downstream = asyncio.create_task(_container_to_client(socket, response, outcome))
    watchdog = asyncio.create_task(socket.keepalive(settings.ping_interval, settings.max_missed_pongs))
    try:
        await _until_done(upstream, downstream, watchdog, socket, response, settings, outcome)
    finally:
        for task in (upstream, downstream, watchdog):
            task.cancel()
        await asyncio.gather(upstream, downstream, watchdog, return_exceptions=True)
        await socket.abort()
        with contextlib.suppress(Exception):
            await response.end()


async def _until_done(
    upstream: asyncio.Task[None],
    downstream: asyncio.Task[Closed],
    watchdog: asyncio.Task[int],
    socket: ContainerSocket,
    response: ResponseChannel,
    settings: RouterSettings,
    outcome: _Outcome,
) -> None:
    done, _ = await asyncio.wait({upstream, downstream, watchdog}, return_when=asyncio.FIRST_COMPLETED)
    if downstream in done:
        await _report_container_close(response, downstream.result(), outcome)
        return
    if watchdog in done:
        missed = watchdog.result()
        message = f"the model container answered none of the last {missed} pings"
        outcome.text = message
        await _report_close(response, INTERNAL_ERROR, message)
        await socket.close(INTERNAL_ERROR, "keepalive ping timeout", limit=settings.close_timeout)
        return
    error = upstream.exception()
    if isinstance(error, StreamReset):
        outcome.text = "client reset the stream"
        await socket.close(GOING_AWAY, "client went away", limit=settings.close_timeout)
        return
    if isinstance(error, (SignatureError, BadEvent)):
        code = error.error_type if isinstance(error, SignatureError) else "ValidationException"
        outcome.text = f"rejected an event: {code}: {error}"
        with contextlib.suppress(Exception):
            await response.send_data(error_event(code, str(error)))
        await socket.close(GOING_AWAY, "client sent an invalid event", limit=settings.close_timeout)
        return
    if error is not None:
        raise error
    # The client ended its input: close the WebSocket, but keep forwarding what the container still
    # sends until it answers the close.
    outcome.text = "client ended the stream"
    logger.debug("client ended its input; closing the WebSocket")
    await socket.close(NORMAL_CLOSURE, "", limit=settings.close_timeout)
    logger.debug("WebSocket closed; forwarding what is left")
    try:
        closed = await asyncio.wait_for(downstream, settings.close_timeout)
    except TimeoutError:
        return
    if closed.code not in (NORMAL_CLOSURE, ABNORMAL_CLOSURE):
        # The container's own close crossed our close: its code still says how the stream ended.
        await _report_container_close(response, closed, outcome)


async def _report_container_close(response: ResponseChannel, closed: Closed, outcome: _Outcome) -> None:
    outcome.text = f"container closed {closed.code} {closed.reason!r}"
    await _report_close(response, closed.code, closed.reason or "the model container closed the stream")


async def _report_close(response: ResponseChannel, code: int, reason: str) -> None:
    event = exception_event("ModelStreamError", {"Message": reason, "ErrorCode": str(code)})
    with contextlib.suppress(Exception):
        await response.send_data(event)


async def _client_to_container(
    body: RequestBody, chain: EventSignatureChain, socket: ContainerSocket, outcome: _Outcome
) -> None:
    splitter = EventSplitter()
    finished = False
    while True:
        chunk = await body.read()
        if not chunk:
            if splitter.pending:
                raise BadEvent(f"the stream ended inside an event ({splitter.pending} bytes)")
            if not finished:
                # The SDK signs an empty frame on close; END_STREAM without it means a truncated stream.
                raise SignatureError(
                    "InvalidSignatureException", "the stream ended without its final signed empty frame"
                )
            return
        for envelope in splitter.feed(chunk):
            if finished:
                raise SignatureError("InvalidSignatureException", "an event followed the final empty frame")
            inner = chain.unwrap(envelope)
            if not inner:
                finished = True  # the signed empty frame: no more events; END_STREAM follows
                continue
            part = read_payload_part(decode_message(inner))
            await socket.send(part)
            outcome.parts_in += 1
        body.consumed(len(chunk))


async def _container_to_client(
    socket: ContainerSocket, response: ResponseChannel, outcome: _Outcome
) -> Closed:
    while True:
        item = await socket.receive()
        if isinstance(item, Closed):
            return item
        await response.send_data(payload_part_event(item))
        outcome.parts_out += 1
