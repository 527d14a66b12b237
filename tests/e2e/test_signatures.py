"""The local endpoint's SigV4 checks, against signatures made by the SDK's own signers: each accepted
case has a twin with one thing changed that must be refused."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
from typing import Any

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
from bidistream.endpoint.api import ApiError, parse_request
from bidistream.endpoint.eventstream import EventSplitter, payload_part_event, read_payload_part
from bidistream.endpoint.sigv4 import (
    Credentials,
    EventSignatureChain,
    SignatureError,
    SignedRequest,
    verify_request,
)

CREDENTIALS = Credentials("AKIDTEST", "secret-test")
PATH = "/endpoints/my-endpoint/invocations-bidirectional-stream"


async def signed_headers(credentials: Credentials, *, session_token: str | None = None) -> dict[str, str]:
    """Request headers as the SDK signs them (h2 style: ``:authority`` instead of ``host``)."""
    request = AWSRequest(
        destination=URI(host="127.0.0.1:8443", path=PATH, query=""),
        method="POST",
        body=None,
        fields=Fields(
            [
                Field(name="content-type", values=["application/vnd.amazon.eventstream"]),
                Field(name="x-amzn-sagemaker-model-invocation-path", values=["v1/listen"]),
            ]
        ),
    )
    identity = AWSCredentialIdentity(
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        session_token=session_token,
    )
    signed = await AsyncSigV4Signer().sign(
        request=request, identity=identity, properties={"region": "us-east-1", "service": "sagemaker"}
    )
    headers = {field.name.lower(): field.as_string() for field in signed.fields}
    headers[":authority"] = "127.0.0.1:8443"
    headers.pop("host", None)
    return headers


def verify(headers: dict[str, str], credentials: Credentials = CREDENTIALS) -> SignedRequest:
    return verify_request(method="POST", path=PATH + "?", headers=headers, credentials=credentials)


def changed(headers: dict[str, str], change: dict[str, str | None]) -> dict[str, str]:
    """``headers`` with each name in ``change`` set to its value, or dropped where it is None."""
    kept = {name: value for name, value in headers.items() if change.get(name, "") is not None}
    return kept | {name: value for name, value in change.items() if value is not None}


def test_request_signed_by_the_sdk_signer_is_accepted() -> None:
    headers = asyncio.run(signed_headers(CREDENTIALS))

    signed = verify(headers)

    assert signed.region == "us-east-1"


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({"x-amzn-sagemaker-model-invocation-path": "v2/listen"}, "InvalidSignatureException"),
        ({":authority": "127.0.0.1:9999"}, "InvalidSignatureException"),
        ({"authorization": None}, "MissingAuthenticationTokenException"),
        ({"x-amz-date": "20200101T000000Z"}, "InvalidSignatureException"),
    ],
)
def test_request_changed_after_signing_is_refused(change: dict[str, str | None], error_type: str) -> None:
    headers = changed(asyncio.run(signed_headers(CREDENTIALS)), change)

    with pytest.raises(SignatureError) as refused:
        verify(headers)

    assert refused.value.error_type == error_type


def test_request_signed_with_another_secret_is_refused() -> None:
    headers = asyncio.run(signed_headers(Credentials(CREDENTIALS.access_key_id, "another-secret")))

    with pytest.raises(SignatureError, match="does not match"):
        verify(headers)


def test_session_token_must_match_when_the_endpoint_has_one() -> None:
    with_token = Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key, "token-1")

    verify(asyncio.run(signed_headers(with_token, session_token="token-1")), with_token)
    with pytest.raises(SignatureError) as refused:
        verify(asyncio.run(signed_headers(with_token, session_token="token-2")), with_token)

    assert refused.value.error_type == "UnrecognizedClientException"


async def signed_envelopes(signed: SignedRequest, inner: list[bytes]) -> list[EventMessage]:
    signer = AsyncEventSigner(
        initial_signature=signed.signature.encode(), event_encoder_cls=EventHeaderEncoder
    )
    identity = AWSCredentialIdentity(
        access_key_id=CREDENTIALS.access_key_id, secret_access_key=CREDENTIALS.secret_access_key
    )
    properties = {"region": signed.region, "service": "sagemaker"}
    envelopes = [
        await signer.sign(event=EventMessage(payload=data), identity=identity, properties=properties)
        for data in inner
    ]  # type: ignore[arg-type]
    return envelopes


def test_event_signature_chain_accepts_the_sdk_signers_events_in_order() -> None:
    signed = verify(asyncio.run(signed_headers(CREDENTIALS)))
    inner = [payload_part_event(Part.text("one")), payload_part_event(Part.binary(b"two"))]
    envelopes = asyncio.run(signed_envelopes(signed, inner))
    chain = EventSignatureChain(signed, CREDENTIALS)

    assert [chain.unwrap(envelope) for envelope in envelopes] == [envelope.payload for envelope in envelopes]


def test_event_signature_chain_refuses_a_changed_payload_and_a_reordered_event() -> None:
    signed = verify(asyncio.run(signed_headers(CREDENTIALS)))
    inner = [payload_part_event(Part.text("one")), payload_part_event(Part.binary(b"two"))]
    first, second = asyncio.run(signed_envelopes(signed, inner))

    tampered = EventMessage(headers=first.headers, payload=first.payload.replace(b"one", b"0ne"))
    with pytest.raises(SignatureError):
        EventSignatureChain(signed, CREDENTIALS).unwrap(tampered)
    with pytest.raises(SignatureError):
        EventSignatureChain(signed, CREDENTIALS).unwrap(second)  # skips the first link


def test_event_stream_split_across_chunks_decodes_to_the_same_parts() -> None:
    parts = [
        Part.text("héllo", completion_state="PARTIAL"),
        Part.binary(bytes(range(256)), completion_state="COMPLETE"),
    ]
    body = b"".join(payload_part_event(part) for part in parts)
    splitter = EventSplitter()

    messages = [
        message for offset in range(0, len(body), 7) for message in splitter.feed(body[offset : offset + 7])
    ]

    assert [read_payload_part(message) for message in messages] == parts
    assert splitter.pending == 0


def test_api_patterns_accept_valid_and_refuse_invalid_parameters() -> None:
    base = {"content-type": "application/vnd.amazon.eventstream"}
    path_and_query = {
        "x-amzn-sagemaker-model-invocation-path": "v1/listen",
        "x-amzn-sagemaker-model-query-string": "model=nova-3&x=%20",
    }
    accepted = parse_request("POST", PATH, {**base, **path_and_query})
    assert accepted.container_resource == "/v1/listen?model=nova-3&x=%20"
    assert parse_request("POST", PATH, base).container_resource == "/invocations-bidirectional-stream"
    for header, value in [
        ("x-amzn-sagemaker-model-invocation-path", "/v1/listen"),
        ("x-amzn-sagemaker-model-invocation-path", "v1" + "/a" * 60),  # over 100 characters
        ("x-amzn-sagemaker-model-query-string", "=x"),
        ("x-amzn-sagemaker-model-query-string", "a=%zz"),
    ]:
        with pytest.raises(ApiError) as refused:
            parse_request("POST", PATH, {**base, header: value})
        assert (refused.value.status, refused.value.error_type) == (400, "InputValidationError")


def sign_over_http2_authority(
    headers: dict[str, str],
    credentials: Credentials = CREDENTIALS,
    *,
    path: str = PATH,
    payload_hash: str = "STREAMING-AWS4-HMAC-SHA256-EVENTS",
    unsigned: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Sign ``headers`` as the JavaScript SDK does over HTTP/2: every header given, ``:authority``
    included, no ``host``, except the ``unsigned`` ones (sent, but left out of SignedHeaders).
    Written from the SigV4 specification, independently of the verifier."""
    amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    sent = {**headers, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    signed = {name: value for name, value in sent.items() if name not in unsigned}
    names = sorted(signed)
    canonical = "\n".join(
        [
            "POST",
            path,
            "",
            "".join(f"{name}:{' '.join(signed[name].split())}\n" for name in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{amz_date[:8]}/us-east-1/sagemaker/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{credentials.secret_access_key}".encode()
    for part in (amz_date[:8], "us-east-1", "sagemaker", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return {**sent, "authorization": authorization}


JS_STYLE_HEADERS = {
    ":authority": "127.0.0.1:8443",
    "amz-sdk-invocation-id": "0f3c2a54-5b0e-4d6c-9d1a-1f2e3d4c5b6a",
    "amz-sdk-request": "attempt=1; max=1",
    "content-type": "application/vnd.amazon.eventstream",
    "x-amz-user-agent": "aws-sdk-js/3.0.0",
    "x-amzn-sagemaker-model-invocation-path": "v1/listen",
    "x-amzn-sagemaker-model-query-string": "model=nova-3",
}


def test_request_signing_authority_instead_of_host_is_accepted() -> None:
    headers = sign_over_http2_authority(JS_STYLE_HEADERS)
    assert "host" not in headers and ";host;" not in headers["authorization"]

    assert verify(headers).region == "us-east-1"


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({":authority": "127.0.0.1:9999"}, "InvalidSignatureException"),
        ({"x-amzn-sagemaker-model-query-string": "model=other"}, "InvalidSignatureException"),
        ({"host": "127.0.0.1:8443"}, "IncompleteSignatureException"),  # an unsigned host beside it
        ({"x-amzn-sagemaker-target-variant": "Other"}, "IncompleteSignatureException"),
        ({"amz-sdk-request": None}, "IncompleteSignatureException"),  # signed, then dropped
    ],
)
def test_request_signing_authority_changed_after_signing_is_refused(
    change: dict[str, str | None], error_type: str
) -> None:
    headers = changed(sign_over_http2_authority(JS_STYLE_HEADERS), change)

    with pytest.raises(SignatureError) as refused:
        verify(headers)

    assert refused.value.error_type == error_type


@pytest.mark.parametrize(
    ("signing", "error"),
    [
        ({"unsigned": frozenset({"x-amz-date"})}, "not in SignedHeaders: x-amz-date"),
        ({"unsigned": frozenset({"x-amz-content-sha256"})}, "not in SignedHeaders: x-amz-content-sha256"),
        ({"payload_hash": "UNSIGNED-PAYLOAD"}, "must be STREAMING-AWS4-HMAC-SHA256-EVENTS"),
        ({"payload_hash": hashlib.sha256(b"").hexdigest()}, "must be STREAMING-AWS4-HMAC-SHA256-EVENTS"),
    ],
)
def test_request_signed_correctly_but_not_as_an_event_stream_is_refused(
    signing: dict[str, Any], error: str
) -> None:
    headers = sign_over_http2_authority(JS_STYLE_HEADERS, **signing)

    with pytest.raises(SignatureError, match=error) as refused:
        verify(headers)

    assert refused.value.error_type == "IncompleteSignatureException"


def test_request_signing_authority_with_another_secret_is_refused() -> None:
    headers = sign_over_http2_authority(JS_STYLE_HEADERS, Credentials(CREDENTIALS.access_key_id, "other"))

    with pytest.raises(SignatureError, match="does not match"):
        verify(headers)


def test_request_signing_neither_host_nor_authority_is_refused() -> None:
    unsigned_authority = {name: value for name, value in JS_STYLE_HEADERS.items() if name != ":authority"}
    headers = {**sign_over_http2_authority(unsigned_authority), ":authority": "127.0.0.1:8443"}

    with pytest.raises(SignatureError) as refused:
        verify(headers)

    assert refused.value.error_type == "IncompleteSignatureException"
    assert "host (or :authority)" in refused.value.message


@pytest.mark.parametrize(("query", "refused"), [("", False), ("x=1", True)])
def test_a_query_string_added_after_signing_is_refused(query: str, refused: bool) -> None:
    headers = sign_over_http2_authority(JS_STYLE_HEADERS)  # signed with an empty query

    def check() -> SignedRequest:
        return verify_request(method="POST", path=f"{PATH}?{query}", headers=headers, credentials=CREDENTIALS)

    if refused:
        with pytest.raises(SignatureError, match="does not match"):
            check()
    else:
        check()
