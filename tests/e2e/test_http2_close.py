"""How streams end on the local endpoint's HTTP/2 connections, on real connections to a real process.

* A client's graceful GOAWAY after the response headers (what Node's HTTP/2 client under the
  JavaScript SDK does) leaves the open stream running to its end (RFC 9113 §6.8); a stream opened
  after it is refused; the endpoint closes the connection once the open stream has ended.
* A container that closes after ``CloseStream`` while the client's input is still open: the
  response ends, the endpoint waits for the client's END_STREAM, and the Python SDK over CRT ends
  cleanly, session after session.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from aws_sdk_sagemaker_runtime_http2.client import AsyncSageMakerRuntimeHTTP2Client
from aws_sdk_sagemaker_runtime_http2.config import AsyncSageMakerRuntimeHTTP2Config
from aws_sdk_sagemaker_runtime_http2.models import (
    InvokeEndpointWithBidirectionalStreamInput,
    ModelStreamError,
    RequestPayloadPart,
    RequestStreamEventPayloadPart,
    ResponseStreamEventPayloadPart,
)
from aws_sdk_signers import AsyncEventSigner, AWSCredentialIdentity
from hyperframe.frame import GoAwayFrame
from smithy_aws_core.identity import AWSCredentialsIdentity
from smithy_aws_core.identity.static import StaticCredentialsResolver
from smithy_aws_event_stream.events import EventHeaderEncoder, EventMessage

from bidistream.client import UTF8, Part, make_transport
from bidistream.endpoint.eventstream import (
    EventSplitter,
    decode_message,
    payload_part_event,
    read_payload_part,
)
from bidistream.endpoint.router import ResponseChannel, RouterSettings
from bidistream.endpoint.server import CONNECTION_WINDOW, LocalEndpoint, _Connection
from bidistream.endpoint.sigv4 import Credentials
from bidistream.endpoint.tls import generate_certificates, server_ssl_context
from tests.e2e.conftest import ENDPOINT_NAME, REGION
from tests.e2e.test_signatures import PATH, signed_headers
from tests.support.processes import RunningProcess, wait_until

WAIT = 10.0  # seconds: the bound on every read of these tests


@dataclass
class Http2Client:
    """A bare HTTP/2 client over TLS (h2 + ssl): frames go out exactly when the test says."""

    sock: ssl.SSLSocket
    conn: h2.connection.H2Connection
    bodies: dict[int, bytearray] = field(default_factory=dict)
    responses: dict[int, dict[str, str]] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    resets: dict[int, int] = field(default_factory=dict)
    goaway: h2.events.ConnectionTerminated | None = None
    eof: bool = False

    @classmethod
    def connect(cls, endpoint: RunningProcess) -> Http2Client:
        return cls.open(endpoint.port, str(endpoint.extra["ca_file"]))

    @classmethod
    def open(cls, port: int, ca_file: str) -> Http2Client:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        return cls(sock, conn)

    def request(self, headers: dict[str, str] | list[tuple[str, str]]) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [(":method", "POST"), (":scheme", "https"), (":path", PATH + "?")]
        fields = list(headers.items()) if isinstance(headers, dict) else headers
        ordered = sorted(fields, key=lambda item: not item[0].startswith(":"))  # pseudo first
        self.conn.send_headers(stream_id, pseudo + ordered)
        self.sock.sendall(self.conn.data_to_send())
        self.bodies[stream_id] = bytearray()
        return stream_id

    def send(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        self.conn.send_data(stream_id, data, end_stream=end_stream)
        self.sock.sendall(self.conn.data_to_send())

    def send_goaway(self, error_code: h2.errors.ErrorCodes = h2.errors.ErrorCodes.NO_ERROR) -> None:
        # Written by hand: h2's own close_connection() would close this client's state machine too.
        self.sock.sendall(GoAwayFrame(0, last_stream_id=0, error_code=error_code).serialize())

    def parts(self, stream_id: int) -> list[Part]:
        return [read_payload_part(message) for message in EventSplitter().feed(bytes(self.bodies[stream_id]))]

    def read_until(self, condition: object, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():  # type: ignore[operator]
            if self.eof or time.monotonic() > deadline:
                pytest.fail(f"no {what} within {WAIT:g}s (eof={self.eof}); got {self!r}")
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.eof = True
                continue
            for event in self.conn.receive_data(data):
                self._on_event(event)
            if (pending := self.conn.data_to_send()) and not self.eof:
                self.sock.sendall(pending)

    def _on_event(self, event: h2.events.Event) -> None:
        match event:
            case h2.events.ResponseReceived(stream_id=stream_id, headers=headers):
                self.responses[stream_id or 0] = dict(headers or [])
            case h2.events.DataReceived(stream_id=stream_id, data=data, flow_controlled_length=length):
                self.bodies[stream_id or 0] += data or b""
                self.conn.acknowledge_received_data(length or 0, stream_id or 0)
            case h2.events.StreamEnded(stream_id=stream_id):
                self.ended.add(stream_id or 0)
            case h2.events.StreamReset(stream_id=stream_id, error_code=code):
                self.resets[stream_id or 0] = int(code or 0)
            case h2.events.ConnectionTerminated():
                self.goaway = event

    def __repr__(self) -> str:
        return (
            f"Http2Client(responses={self.responses}, ended={self.ended}, resets={self.resets}, "
            f"goaway={self.goaway}, bodies={ {sid: len(body) for sid, body in self.bodies.items()} })"
        )

    def close(self) -> None:
        self.sock.close()


def identity(credentials: dict[str, str]) -> AWSCredentialIdentity:
    return AWSCredentialIdentity(
        access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


class EventFrames:
    """Event frames signed as the SDK signs them, chained from the request's signature."""

    def __init__(self, headers: dict[str, str], credentials: dict[str, str]) -> None:
        seed = headers["authorization"].rsplit("Signature=", 1)[1]
        self._signer = AsyncEventSigner(initial_signature=seed.encode(), event_encoder_cls=EventHeaderEncoder)
        self._identity = identity(credentials)
        self._properties = {"region": REGION, "service": "sagemaker"}

    def part(self, part: Part) -> bytes:
        event = decode_message(payload_part_event(part))
        signed = asyncio.run(
            self._signer.sign(event=event, identity=self._identity, properties=self._properties)
        )  # type: ignore[arg-type]
        return signed.encode()

    def final(self) -> bytes:
        signed = asyncio.run(
            self._signer.sign_empty(
                event=EventMessage(), identity=self._identity, properties=self._properties
            )  # type: ignore[arg-type]
        )
        return signed.encode()


def signed_request(credentials: dict[str, str]) -> tuple[dict[str, str], EventFrames]:
    key = Credentials(credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"])
    headers = asyncio.run(signed_headers(key))  # ":authority" 127.0.0.1:8443, signed as host
    return headers, EventFrames(headers, credentials)


def echoing_stream(
    endpoint: RunningProcess, credentials: dict[str, str]
) -> tuple[Http2Client, int, EventFrames]:
    """A connection with one signed stream open, whose first part ("before") has come back."""
    client = Http2Client.connect(endpoint)
    try:
        headers, frames = signed_request(credentials)
        stream = client.request(headers)
        client.send(stream, frames.part(Part.text("before")))
        client.read_until(lambda: len(client.parts(stream)) >= 1, "echo of the first part")
    except BaseException:
        client.close()
        raise
    return client, stream, frames


def test_a_client_goaway_after_the_headers_leaves_the_open_stream_running(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    client, stream, frames = echoing_stream(peer_endpoint, credentials)
    try:
        client.send_goaway()
        client.send(stream, frames.part(Part.binary(b"after the goaway")))
        client.read_until(lambda: len(client.parts(stream)) >= 2, "echo of a part sent after GOAWAY")
        refused = client.request(signed_request(credentials)[0])
        client.read_until(lambda: refused in client.resets, "the new stream's reset")
        client.send(stream, frames.final(), end_stream=True)
        client.read_until(
            lambda: stream in client.ended and client.eof, "the end of the stream and connection"
        )
    finally:
        client.close()

    assert client.responses[stream][":status"] == "200"
    assert [(part.data, part.data_type) for part in client.parts(stream)] == [
        (b"before", UTF8),
        (b"after the goaway", "BINARY"),
    ]
    assert client.resets == {refused: h2.errors.ErrorCodes.REFUSED_STREAM}
    assert client.goaway is not None and client.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == stream  # the refused stream was never processed
    assert "client sent GOAWAY; 1 open stream(s) continue" in peer_endpoint.output()


def test_a_client_that_vanishes_after_its_goaway_leaves_nothing_running(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    ended = "client reset the stream; parts in 1, out 1"
    before = peer_endpoint.output().count(ended)
    client, _, _ = echoing_stream(peer_endpoint, credentials)
    try:
        client.send_goaway()
    finally:
        client.sock.close()  # no END_STREAM, no reset: the client is gone

    # The stream's router ends (its container socket closed) once the connection is gone.
    wait_until(lambda: peer_endpoint.output().count(ended) > before, timeout=WAIT, what=ended)


def test_a_client_goaway_with_no_open_stream_is_answered_with_ours_and_a_close(
    peer_endpoint: RunningProcess,
) -> None:
    client = Http2Client.connect(peer_endpoint)
    try:
        client.send_goaway()
        client.read_until(lambda: client.eof, "the connection to close")
    finally:
        client.close()

    assert client.goaway is not None and client.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == 0


def test_a_client_goaway_with_an_error_code_still_ends_the_connection_at_once(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    client, stream, _ = echoing_stream(peer_endpoint, credentials)
    try:
        client.send_goaway(h2.errors.ErrorCodes.PROTOCOL_ERROR)
        client.read_until(lambda: client.eof, "the connection to close")
    finally:
        client.close()

    assert len(client.parts(stream)) == 1
    assert stream not in client.ended


SESSIONS = 100
CLOSE_STREAM = b'{"type":"CloseStream"}'
#: What a session saw when closing its input did not return within WAIT: smithy-core's body writer
#: waits forever on a CRT writer that died (the other face of the bug the twin below shows).
INPUT_CLOSE_HUNG = "input close hung"


async def close_after_close_stream(client: AsyncSageMakerRuntimeHTTP2Client) -> list[str]:
    """One session as Pipecat's STT ends one: CloseStream, read until the container's close, then
    close the input. Returns what the client saw; every wait is bounded."""
    stream = await asyncio.wait_for(
        client.invoke_endpoint_with_bidirectional_stream(
            InvokeEndpointWithBidirectionalStreamInput(endpoint_name=ENDPOINT_NAME)
        ),
        WAIT,
    )
    _, receiver = await asyncio.wait_for(stream.await_output(), WAIT)
    part = RequestPayloadPart(bytes_=CLOSE_STREAM, data_type=UTF8)
    await asyncio.wait_for(stream.input_stream.send(RequestStreamEventPayloadPart(value=part)), WAIT)
    seen = []
    while True:
        try:
            event = await asyncio.wait_for(receiver.receive(), WAIT)
        except ModelStreamError as error:
            seen.append(f"ModelStreamError {error.error_code}")
            break
        if event is None:
            seen.append("end")
            break
        assert isinstance(event, ResponseStreamEventPayloadPart)
        seen.append(f"part {event.value.bytes_!r}")
    try:
        await asyncio.wait_for(stream.input_stream.close(), WAIT)  # the call that used to hang
    except TimeoutError:
        seen.append(INPUT_CLOSE_HUNG)
    return seen


def run_sessions(
    uri: str, ca_file: str, credentials: dict[str, str], count: int, *, until_broken: bool = False
) -> tuple[list[list[str]], list[str]]:
    """``count`` sessions in a row on one SDK client; returns what each saw and any error the CRT
    reported on the side (a failed body write surfaces only as an unretrieved task exception).
    ``until_broken``: stop after the first session that hung or made the CRT report an error."""
    crt_errors: list[str] = []

    async def run() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: crt_errors.append(str(context.get("exception"))))
        config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
            region=REGION,
            endpoint_uri=uri,
            transport=make_transport(ca_file),
            aws_credentials_identity_resolver=StaticCredentialsResolver(
                AWSCredentialsIdentity(
                    access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                    secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                )
            ),
        )
        client = AsyncSageMakerRuntimeHTTP2Client(config=config)
        try:
            sessions = []
            for _ in range(count):
                sessions.append(await close_after_close_stream(client))
                if until_broken and (crt_errors or sessions[-1][-1] == INPUT_CLOSE_HUNG):
                    break
            return sessions
        finally:
            await client.close()

    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: crt_errors.append(str(unraisable.exc_value))
    try:
        return asyncio.run(run()), crt_errors
    finally:
        sys.unraisablehook = previous_hook


EXPECTED_SESSION = [f"part {CLOSE_STREAM!r}", "ModelStreamError 1000"]


def test_python_sdk_ends_cleanly_when_the_container_closes_after_close_stream(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    uri, ca_file = str(peer_endpoint.extra["uri"]), str(peer_endpoint.extra["ca_file"])

    sessions, crt_errors = run_sessions(uri, ca_file, credentials, SESSIONS)

    assert [index for index, seen in enumerate(sessions) if seen != EXPECTED_SESSION] == [], sessions
    assert crt_errors == []
    assert "did not end its request" not in peer_endpoint.output()


@contextlib.contextmanager
def in_process_endpoint(
    peer: RunningProcess, credentials: dict[str, str], cert_dir: Path, close_timeout: float
) -> Iterator[int]:
    """An endpoint in a thread of this process, with its own ``close_timeout``; yields its port
    (its CA is ``cert_dir / "ca.pem"``). Once ``close()`` has returned, nothing of it may run on."""
    files = generate_certificates(cert_dir)
    settings = RouterSettings(
        model_url=peer.base_url,
        credentials=Credentials(credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"]),
        close_timeout=close_timeout,
    )
    loop = asyncio.new_event_loop()
    endpoint = LocalEndpoint(settings, server_ssl_context(files), port=0)
    port = loop.run_until_complete(endpoint.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(endpoint.close(), loop).result(WAIT)
        left = asyncio.run_coroutine_threadsafe(other_tasks(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
    assert not left, f"tasks still running after LocalEndpoint.close(): {left}"


async def other_tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


@pytest.fixture
def resetting_endpoint(peer: RunningProcess, credentials: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """An endpoint that resets a stream right after its response ends (close_timeout 0)."""
    with in_process_endpoint(peer, credentials, tmp_path, close_timeout=0.0) as port:
        yield f"https://127.0.0.1:{port}"


def test_twin_a_reset_right_after_the_response_breaks_the_python_sdk_body_writer(
    resetting_endpoint: str, credentials: dict[str, str], tmp_path: Path
) -> None:
    # About one session in two shows the error (measured over 90): 30 make a miss vanishingly rare.
    # On a busy machine the broken writer shows instead as a close of the input that never returns.
    sessions, crt_errors = run_sessions(
        resetting_endpoint, str(tmp_path / "ca.pem"), credentials, 30, until_broken=True
    )

    answered = (EXPECTED_SESSION, [*EXPECTED_SESSION, INPUT_CLOSE_HUNG])
    assert all(seen in answered for seen in sessions), sessions
    hung = sessions[-1][-1] == INPUT_CLOSE_HUNG
    assert hung or any("AWS_ERROR_HTTP_STREAM_HAS_COMPLETED" in error for error in crt_errors), crt_errors


@pytest.mark.parametrize(
    ("client_ends_input", "close_timeout", "resets"),
    [(False, 0.3, {1: h2.errors.ErrorCodes.NO_ERROR}), (True, WAIT, {})],
    ids=["never-ends-input", "ends-input"],
)
def test_a_client_that_never_ends_its_input_is_reset_once_close_timeout_has_passed(
    peer: RunningProcess,
    credentials: dict[str, str],
    tmp_path: Path,
    client_ends_input: bool,
    close_timeout: float,
    resets: dict[int, int],
) -> None:
    with in_process_endpoint(peer, credentials, tmp_path, close_timeout) as port:
        client = Http2Client.open(port, str(tmp_path / "ca.pem"))
        try:
            headers, frames = signed_request(credentials)
            stream = client.request(headers)
            client.send(stream, frames.part(Part.text(CLOSE_STREAM.decode())))
            client.read_until(lambda: stream in client.ended, "the end of the response")
            if client_ends_input:
                client.send(stream, frames.final(), end_stream=True)
            else:
                client.read_until(lambda: stream in client.resets, "the reset of the request side")
            # The connection still serves: the stream's wait held nothing else up.
            headers, frames = signed_request(credentials)
            second = client.request(headers)
            client.send(second, frames.part(Part.text("again")))
            client.read_until(lambda: len(client.parts(second)) >= 1, "the second stream's echo")
        finally:
            client.close()

    assert client.resets == resets, client


class MemoryWriter:
    """The server side of a connection kept in memory: what the server writes, for the test's client."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


async def refuse_unread(*, response: ResponseChannel, **_: object) -> None:
    """A router that answers without reading the request body, as a 403 or a 424 does."""
    await response.send_headers([(":status", "403")], end_stream=True)


def test_credit_for_request_data_the_router_never_read_goes_back_when_its_stream_ends() -> None:
    # Nine streams, each with 1 MiB of request data queued before its router ran and never read:
    # unless their credit goes back, a connection that outlives 16 such streams stalls for good.
    streams, size = 9, 1024 * 1024 - 1

    async def run() -> h2.connection.H2Connection:
        reader, writer = asyncio.StreamReader(), MemoryWriter()
        settings = RouterSettings(
            model_url="ws://127.0.0.1:9", credentials=Credentials("AKID", "secret"), close_timeout=0.0
        )
        server = asyncio.create_task(_Connection(reader, writer, refuse_unread, settings).run())  # type: ignore[arg-type]
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        reader.feed_data(client.data_to_send())
        resets: set[int] = set()

        async def exchange(condition: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + WAIT
            while not condition():
                assert time.monotonic() < deadline, f"no {what} within {WAIT:g}s"
                await asyncio.sleep(0.001)
                events = client.receive_data(bytes(writer.data))
                writer.data.clear()
                resets.update(event.stream_id for event in events if isinstance(event, h2.events.StreamReset))
                reader.feed_data(client.data_to_send())

        await exchange(
            lambda: client.outbound_flow_control_window == CONNECTION_WINDOW, "the server's window"
        )
        for _ in range(streams):
            stream_id = client.get_next_available_stream_id()
            headers = [(":method", "POST"), (":scheme", "https"), (":path", PATH), (":authority", "a")]
            client.send_headers(stream_id, headers)
            for offset in range(0, size, client.max_outbound_frame_size):
                client.send_data(stream_id, b"x" * min(client.max_outbound_frame_size, size - offset))
        reader.feed_data(client.data_to_send())
        await exchange(lambda: len(resets) == streams, "end of every stream")
        reader.feed_eof()
        await asyncio.wait_for(server, WAIT)
        return client

    client = asyncio.run(run())

    assert client.outbound_flow_control_window == CONNECTION_WINDOW
