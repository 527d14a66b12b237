"""The local endpoint is as strict as the service: host and every x-amz-*/x-amzn-* header must be signed,
authentication comes before request validation, and a stream must end with its signed empty frame.
Each refused case has an accepted twin; the router runs against a real container peer."""

from __future__ import annotations

import asyncio

import h2.errors
import pytest
from aws_sdk_signers import (
    URI,
    AsyncEventSigner,
    AsyncSigV4Signer,
    AWSCredentialIdentity,
    AWSRequest,
    Field,
    Fields,
)
from smithy_aws_event_stream.events import EventHeaderEncoder, EventMessage

from bidistream.client import Part
from bidistream.endpoint.eventstream import decode_message, payload_part_event
from bidistream.endpoint.sigv4 import SignedRequest
from tests.e2e.test_failures import CREDENTIALS, RecordedResponse, serve
from tests.e2e.test_http2_close import Http2Client, signed_request
from tests.e2e.test_signatures import (
    JS_STYLE_HEADERS,
    PATH,
    sign_over_http2_authority,
    signed_headers,
    verify,
)
from tests.support.processes import RunningProcess

BAD_PATH = "/endpoints/not_a_valid_name!/invocations-bidirectional-stream"


async def headers_signed_for(path: str, extra: dict[str, str]) -> dict[str, str]:
    """Headers signed by the SDK signer for ``path``, including ``extra`` in the signature."""
    fields = [Field(name="content-type", values=["application/vnd.amazon.eventstream"])]
    fields += [Field(name=name, values=[value]) for name, value in extra.items()]
    request = AWSRequest(
        destination=URI(host="127.0.0.1:8443", path=path, query=""),
        method="POST",
        body=None,
        fields=Fields(fields),
    )
    identity = AWSCredentialIdentity(
        access_key_id=CREDENTIALS.access_key_id, secret_access_key=CREDENTIALS.secret_access_key
    )
    signed = await AsyncSigV4Signer().sign(
        request=request, identity=identity, properties={"region": "us-east-1", "service": "sagemaker"}
    )
    headers = {field.name.lower(): field.as_string() for field in signed.fields}
    headers[":authority"] = headers.pop("host", "127.0.0.1:8443")
    return headers


class ScriptedBody:
    """A request body that delivers the given chunks, then END_STREAM."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def consumed(self, size: int) -> None:
        pass


def error_codes(response: RecordedResponse) -> list[tuple[object, object]]:
    return [
        (event.headers[":error-code"], event.headers.get(":error-message"))
        for event in response.events()
        if ":error-code" in event.headers
    ]


def test_an_unsigned_amzn_header_is_refused_with_403(peer: RunningProcess) -> None:
    headers = asyncio.run(signed_headers(CREDENTIALS))
    headers["x-amzn-sagemaker-session-id"] = "added-by-a-proxy"

    response = serve(headers, ScriptedBody([]), peer.base_url)

    assert response.status() == "403"
    assert dict(response.headers or [])["x-amzn-errortype"] == "IncompleteSignatureException"


def test_the_same_amzn_header_signed_is_accepted(peer: RunningProcess) -> None:
    headers = asyncio.run(headers_signed_for(PATH, {"x-amzn-sagemaker-session-id": "s1"}))

    response = serve(headers, ScriptedBody([]), peer.base_url)

    assert response.status() == "200"


def test_host_left_out_of_signed_headers_is_refused(peer: RunningProcess) -> None:
    headers = asyncio.run(signed_headers(CREDENTIALS))
    headers["authorization"] = headers["authorization"].replace(";host;", ";", 1)
    assert ";host;" not in headers["authorization"]

    response = serve(headers, ScriptedBody([]), peer.base_url)

    assert response.status() == "403"
    assert dict(response.headers or [])["x-amzn-errortype"] == "IncompleteSignatureException"
    assert b"host" in response.data


def test_an_unauthenticated_request_with_a_bad_path_gets_403_not_400(peer: RunningProcess) -> None:
    headers = asyncio.run(headers_signed_for(BAD_PATH, {}))
    headers.pop("authorization")

    response = serve(headers, ScriptedBody([]), peer.base_url, BAD_PATH)

    assert response.status() == "403"


def test_a_signed_request_with_a_bad_path_still_gets_400(peer: RunningProcess) -> None:
    headers = asyncio.run(headers_signed_for(BAD_PATH, {}))

    response = serve(headers, ScriptedBody([]), peer.base_url, BAD_PATH)

    assert response.status() == "400"
    assert dict(response.headers or [])["x-amzn-errortype"] == "InputValidationError"


async def sdk_signed_frames(signed: SignedRequest, parts: list[Part], final_frame: bool) -> list[bytes]:
    """Frames as the SDK publisher writes them: each event signed, then on close a signed empty one."""
    signer = AsyncEventSigner(
        initial_signature=signed.signature.encode(), event_encoder_cls=EventHeaderEncoder
    )
    identity = AWSCredentialIdentity(
        access_key_id=CREDENTIALS.access_key_id, secret_access_key=CREDENTIALS.secret_access_key
    )
    properties = {"region": signed.region, "service": "sagemaker"}
    frames = [
        await signer.sign(
            event=decode_message(payload_part_event(part)),
            identity=identity,
            properties=properties,  # type: ignore[arg-type]
        )
        for part in parts
    ]
    if final_frame:
        frames.append(
            await signer.sign_empty(event=EventMessage(), identity=identity, properties=properties)  # type: ignore[arg-type]
        )
    return [frame.encode() for frame in frames]


def signed_stream(final_frame: bool) -> tuple[dict[str, str], list[bytes]]:
    headers = asyncio.run(signed_headers(CREDENTIALS))
    frames = asyncio.run(sdk_signed_frames(verify(headers), [Part.text("one")], final_frame))
    return headers, frames


def test_a_stream_ending_without_the_final_signed_frame_is_refused(peer: RunningProcess) -> None:
    headers, chunks = signed_stream(final_frame=False)

    response = serve(headers, ScriptedBody(chunks), peer.base_url)

    assert response.status() == "200"
    assert [code for code, _ in error_codes(response)] == ["InvalidSignatureException"]


def test_a_stream_ending_with_the_final_signed_frame_ends_cleanly(peer: RunningProcess) -> None:
    headers, chunks = signed_stream(final_frame=True)

    response = serve(headers, ScriptedBody(chunks), peer.base_url)

    assert response.status() == "200"
    assert error_codes(response) == []


def test_a_request_signing_authority_instead_of_host_is_served(peer: RunningProcess) -> None:
    headers = sign_over_http2_authority(JS_STYLE_HEADERS)
    assert ":authority;" in headers["authorization"] and ";host;" not in headers["authorization"]

    response = serve(headers, ScriptedBody([]), peer.base_url)

    assert response.status() == "200"


def test_a_request_signing_neither_authority_nor_host_is_refused_with_403(peer: RunningProcess) -> None:
    unsigned = {name: value for name, value in JS_STYLE_HEADERS.items() if name != ":authority"}
    headers = {**sign_over_http2_authority(unsigned), ":authority": JS_STYLE_HEADERS[":authority"]}

    response = serve(headers, ScriptedBody([]), peer.base_url)

    assert response.status() == "403"
    assert dict(response.headers or [])["x-amzn-errortype"] == "IncompleteSignatureException"
    assert b"host (or :authority)" in response.data


def duplicated_signed_header(credentials: dict[str, str], added: str | None) -> list[tuple[str, str]]:
    """A signed request, with ``added`` sent as an extra invocation path *before* the signed one."""
    headers = list(signed_request(credentials)[0].items())
    if added is not None:
        headers.insert(0, ("x-amzn-sagemaker-model-invocation-path", added))
    return headers


def first_response(endpoint: RunningProcess, headers: list[tuple[str, str]]) -> dict[str, str]:
    client = Http2Client.connect(endpoint)
    try:
        stream = client.request(headers)
        client.read_until(lambda: stream in client.responses, "the response headers")
    finally:
        client.close()
    return client.responses[stream]


def test_a_second_value_beside_a_signed_header_is_refused_with_403(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    response = first_response(peer_endpoint, duplicated_signed_header(credentials, "v1/other"))

    assert response[":status"] == "403", response
    assert response["x-amzn-errortype"] == "InvalidSignatureException", response


def test_the_same_signed_header_sent_once_is_served(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    response = first_response(peer_endpoint, duplicated_signed_header(credentials, None))

    assert response[":status"] == "200", response


@pytest.mark.parametrize(("host", "served"), [("127.0.0.1:9999", False), ("127.0.0.1:8443", True)])
def test_a_host_header_other_than_the_signed_authority_never_reaches_the_router(
    peer_endpoint: RunningProcess, credentials: dict[str, str], host: str, served: bool
) -> None:
    headers = [*signed_request(credentials)[0].items(), ("host", host)]  # host signed, :authority 8443
    client = Http2Client.connect(peer_endpoint)
    client.conn.config.validate_outbound_headers = False  # h2 would refuse to send the mismatch
    try:
        stream = client.request(headers)
        client.read_until(lambda: stream in client.responses or client.goaway is not None, "an answer")
    finally:
        client.close()

    if served:
        assert client.responses[stream][":status"] == "200", client
    else:
        assert stream not in client.responses, client  # h2 refuses it as malformed (RFC 9113 §8.3.1)
        assert client.goaway is not None and client.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
