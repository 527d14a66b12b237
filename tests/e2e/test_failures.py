"""How ``handle_stream`` ends a stream that fails: a bad credential is a 403, an internal failure before
the 200 is a 500, and one after it is an ``InternalStreamFailure`` event, never a clean end. The router
runs in-process (its failures cannot be provoked through a well-behaved client) against the peer container,
a real process."""

from __future__ import annotations

import asyncio
import json

from smithy_aws_event_stream.events import EventMessage

from bidistream.endpoint.eventstream import EventSplitter
from bidistream.endpoint.router import RouterSettings, handle_stream
from bidistream.endpoint.sigv4 import Credentials
from tests.e2e.test_signatures import PATH, signed_headers
from tests.support.processes import RunningProcess

CREDENTIALS = Credentials("AKIDTEST", "secret-test")


class RecordedResponse:
    """A ResponseChannel that keeps what the router sends."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] | None = None
        self.data = b""
        self.ended = False

    async def send_headers(self, headers: list[tuple[str, str]], *, end_stream: bool = False) -> None:
        self.headers = headers
        self.ended = self.ended or end_stream

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        self.data += data
        self.ended = self.ended or end_stream

    async def end(self) -> None:
        self.ended = True

    def status(self) -> str | None:
        return dict(self.headers or [])[":status"] if self.headers else None

    def events(self) -> list[EventMessage]:
        return EventSplitter().feed(self.data)


class FailingBody:
    """A request body whose connection breaks on the first read."""

    async def read(self) -> bytes:
        raise OSError("connection lost")

    def consumed(self, size: int) -> None:
        pass


class SilentBody:
    """A request body that never sends anything (the stream ends by other means)."""

    async def read(self) -> bytes:
        await asyncio.Event().wait()
        return b""

    def consumed(self, size: int) -> None:
        pass


def serve(headers: dict[str, str], body: object, model_url: str, path: str = PATH) -> RecordedResponse:
    response = RecordedResponse()
    settings = RouterSettings(
        model_url=model_url, credentials=CREDENTIALS, connect_timeout=5, close_timeout=1
    )

    async def run() -> None:
        await asyncio.wait_for(
            handle_stream(
                method="POST",
                path=path + "?",
                headers=headers,
                body=body,  # type: ignore[arg-type]
                response=response,
                settings=settings,
            ),
            30,
        )

    asyncio.run(run())
    return response


def with_access_key(headers: dict[str, str], access_key_id: str) -> dict[str, str]:
    return {**headers, "authorization": headers["authorization"].replace("AKIDTEST/", f"{access_key_id}/", 1)}


def test_signed_request_opens_the_stream(peer: RunningProcess) -> None:
    headers = asyncio.run(signed_headers(CREDENTIALS))

    response = serve(headers, FailingBody(), peer.base_url)

    assert response.status() == "200"


def test_a_non_ascii_access_key_is_refused_with_403(peer: RunningProcess) -> None:
    headers = with_access_key(asyncio.run(signed_headers(CREDENTIALS)), "AKIDTÉST")

    response = serve(headers, SilentBody(), peer.base_url)

    assert response.status() == "403"
    assert dict(response.headers or [])["x-amzn-errortype"] == "UnrecognizedClientException"


def test_a_non_ascii_session_token_is_refused_with_403(peer: RunningProcess) -> None:
    with_token = Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key, "token")
    headers = asyncio.run(signed_headers(CREDENTIALS, session_token="tökén"))
    response = RecordedResponse()
    settings = RouterSettings(model_url=peer.base_url, credentials=with_token)

    asyncio.run(
        handle_stream(
            method="POST",
            path=PATH + "?",
            headers=headers,
            body=SilentBody(),
            response=response,
            settings=settings,
        )
    )

    assert response.status() == "403"


def test_a_failure_before_the_response_headers_is_a_500(peer: RunningProcess) -> None:
    headers = asyncio.run(signed_headers(CREDENTIALS))

    response = serve(headers, SilentBody(), "http://[not-a-host")  # the WebSocket URI cannot be parsed

    assert response.status() == "500"
    assert dict(response.headers or [])["x-amzn-errortype"] == "InternalServerError"
    assert json.loads(response.data)["ErrorCode"] == "InternalFailure"
    assert response.ended


def test_a_failure_after_the_200_ends_with_an_internal_stream_failure_event(peer: RunningProcess) -> None:
    headers = asyncio.run(signed_headers(CREDENTIALS))

    response = serve(headers, FailingBody(), peer.base_url)

    assert response.status() == "200"
    last = response.events()[-1]
    assert (last.headers[":message-type"], last.headers[":exception-type"]) == (
        "exception",
        "InternalStreamFailure",
    )
    assert response.ended
