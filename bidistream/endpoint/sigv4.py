"""Check SigV4 the way the runtime does: the request signature, then the chain of event signatures.

The request signature is recomputed over exactly the headers the client lists in SignedHeaders
(``:authority`` included when signed, as the JavaScript SDK does over HTTP/2), with the SDK signer's
own canonical path, query and header rules (``aws_sdk_signers``); each event's signature chains from
the previous one (the request's first).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from aws_sdk_signers import URI, AWSRequest, Fields, SigV4Signer
from aws_sdk_signers.signers import EVENT_STREAM_HASH, SigV4SigningProperties
from smithy_aws_event_stream.events import EventHeaderEncoder, EventMessage

SERVICE = "sagemaker"
ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)  # what AWS allows between x-amz-date and its clock

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed_headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    """A request or event not signed with the endpoint's credentials; ``error_type`` as AWS names it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class Credentials:
    """The one credential pair this endpoint accepts (from its own environment)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise ValueError(
                "the local endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to check signatures"
            )
        return cls(key, secret, environ.get("AWS_SESSION_TOKEN") or None)


@dataclass(frozen=True)
class SignedRequest:
    """What a verified request signature fixes for the events that follow it."""

    region: str
    signature: str  # hex; the first link of the event signature chain


def verify_request(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    now: datetime.datetime | None = None,
) -> SignedRequest:
    """Check the ``authorization`` header of a request (header names lower case, pseudo-headers kept)."""
    authorization = headers.get("authorization")
    if authorization is None:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise SignatureError("IncompleteSignatureException", "Authorization header is not a SigV4 header")
    credential = match["credential"].split("/")
    if len(credential) != 5 or credential[3] != SERVICE or credential[4] != "aws4_request":
        raise SignatureError("IncompleteSignatureException", f"bad credential scope: {match['credential']}")
    access_key_id, scope_date, region = credential[0], credential[1], credential[2]
    if not _same_text(access_key_id, credentials.access_key_id):
        raise SignatureError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.datetime.strptime(amz_date, TIMESTAMP_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise SignatureError("IncompleteSignatureException", "x-amz-date is missing or malformed") from None
    if scope_date != amz_date[:8]:
        raise SignatureError("InvalidSignatureException", "credential scope date does not match x-amz-date")
    if abs((now or datetime.datetime.now(datetime.UTC)) - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureError(
            "InvalidSignatureException", "Signature expired: x-amz-date is more than 15 min off"
        )
    if credentials.session_token is not None and not _same_text(
        headers.get("x-amz-security-token", ""), credentials.session_token
    ):
        raise SignatureError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )

    signed_names = match["signed_headers"].split(";")
    _check_signed_headers(signed_names, headers)
    raw_path, _, query = path.partition("?")
    canonicalizer = _ExactHeadersCanonicalizer(signed_names, headers)
    properties: SigV4SigningProperties = {"region": region, "service": SERVICE, "date": amz_date}
    canonical = canonicalizer.canonical_request(
        signing_properties=properties,
        request=AWSRequest(
            destination=URI(host=headers.get(":authority", ""), path=raw_path, query=query or None),
            method=method,
            body=None,
            fields=Fields(),
        ),
    )
    string_to_sign = canonicalizer.string_to_sign(canonical_request=canonical, signing_properties=properties)
    key = _signing_key(credentials.secret_access_key, scope_date, region)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not _same_text(expected, match["signature"]):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return SignedRequest(region=region, signature=match["signature"])


# The request's authority: HTTP/1.1 signs ``host``; over HTTP/2 the CRT (Python SDK) signs ``host``
# and sends ``:authority``, the JavaScript SDK signs ``:authority`` itself.
_AUTHORITY_NAMES = frozenset({"host", ":authority"})


def _check_signed_headers(signed_names: list[str], headers: Mapping[str, str]) -> None:
    """The request's authority and every x-amz-*/x-amzn-* header it carries must be signed (else one
    could be changed on the way, the invocation path say, without breaking the signature), and every
    signed header must be there."""
    signed = set(signed_names)
    unsigned = [
        name
        for name in sorted(headers)
        if (name == "host" or name.startswith(("x-amz-", "x-amzn-"))) and name not in signed
    ]
    if not signed & _AUTHORITY_NAMES:
        unsigned = ["host (or :authority)", *(name for name in unsigned if name != "host")]
    if unsigned:
        raise SignatureError(
            "IncompleteSignatureException", f"header(s) not in SignedHeaders: {', '.join(unsigned)}"
        )
    missing = [name for name in signed_names if _signed_value(name, headers) is None]
    if missing:
        raise SignatureError(
            "IncompleteSignatureException", f"signed header(s) missing: {', '.join(missing)}"
        )
    payload_hash = headers.get("x-amz-content-sha256")
    if payload_hash != EVENT_STREAM_HASH:
        # An event stream's body cannot be hashed up front: its events are signed one by one, and a
        # request that declares another payload hash does not say it signs them.
        got = "missing" if payload_hash is None else repr(payload_hash)
        raise SignatureError(
            "IncompleteSignatureException",
            f"x-amz-content-sha256 must be {EVENT_STREAM_HASH} for an event stream (got {got})",
        )


def _signed_value(name: str, headers: Mapping[str, str]) -> str | None:
    if name == "host":
        return headers.get("host", headers.get(":authority"))
    return headers.get(name)


class _ExactHeadersCanonicalizer(SigV4Signer):
    """The SDK signer's canonical request, over exactly the headers the client listed.

    The stock signer adds ``host`` when it is not among the fields and drops names it never signs;
    a verifier must do neither: it checks what the client signed, nothing more and nothing less.
    The payload hash is the signed ``x-amz-content-sha256`` (for an event stream
    ``STREAMING-AWS4-HMAC-SHA256-EVENTS``), as both SDKs' signers use it.
    """

    def __init__(self, signed_names: list[str], headers: Mapping[str, str]) -> None:
        self._fields = {name: _signed_value(name, headers) or "" for name in sorted(signed_names)}
        self._payload_hash = headers.get("x-amz-content-sha256", "")

    def _normalize_signing_fields(self, *, request: AWSRequest) -> dict[str, str]:
        return self._fields

    def _format_canonical_payload(
        self, *, request: AWSRequest, signing_properties: SigV4SigningProperties
    ) -> str:
        return self._payload_hash


class EventSignatureChain:
    """Verifies each signed event-stream envelope against the previous signature and unwraps it."""

    def __init__(self, signed: SignedRequest, credentials: Credentials) -> None:
        self._region = signed.region
        self._prior_signature = signed.signature
        self._secret = credentials.secret_access_key

    def unwrap(self, envelope: EventMessage) -> bytes:
        """The inner encoded message (empty for the final frame), if ``envelope`` is signed correctly."""
        date = envelope.headers.get(":date")
        signature = envelope.headers.get(":chunk-signature")
        if not isinstance(date, datetime.datetime) or not isinstance(signature, bytes):
            raise SignatureError(
                "InvalidSignatureException", "event is not signed (no :date / :chunk-signature)"
            )
        timestamp = date.astimezone(datetime.UTC).strftime(TIMESTAMP_FORMAT)
        encoder = EventHeaderEncoder()
        encoder.encode_headers({":date": date})
        scope = f"{timestamp[:8]}/{self._region}/{SERVICE}/aws4_request"
        string_to_sign = "\n".join(
            (
                f"{ALGORITHM}-PAYLOAD",
                timestamp,
                scope,
                self._prior_signature,
                hashlib.sha256(encoder.get_result()).hexdigest(),
                hashlib.sha256(envelope.payload).hexdigest(),
            )
        )
        key = _signing_key(self._secret, timestamp[:8], self._region)
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise SignatureError(
                "InvalidSignatureException", "event signature does not match the signature chain"
            )
        self._prior_signature = signature.hex()
        return envelope.payload


def _same_text(given: str, expected: str) -> bool:
    """Constant-time equality; as bytes, because ``compare_digest`` raises TypeError on non-ASCII str
    and a header may carry any character."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (day, region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
