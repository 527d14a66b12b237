"""Check SigV4 the way the runtime does: the request signature, then the chain of event signatures.

The request signature is recomputed with the SDK's own signer (``aws_sdk_signers``) over the headers the
client says it signed; each event's signature chains from the previous one (the request's first).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from aws_sdk_signers import URI, AsyncSigV4Signer, AWSCredentialIdentity, AWSRequest, Field, Fields
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


async def verify_request(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    now: datetime.datetime | None = None,
) -> SignedRequest:
    """Check the ``authorization`` header of a request (header names lower case; ``:authority`` as host)."""
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
    # Real SigV4 always signs host; an unsigned x-amz-*/x-amzn-* header (the invocation path, say)
    # could be changed on the way without breaking the signature.
    unsigned = [
        name
        for name in ["host", *sorted(headers)]
        if (name == "host" or name.startswith(("x-amz-", "x-amzn-"))) and name not in signed_names
    ]
    if unsigned:
        raise SignatureError(
            "IncompleteSignatureException", f"header(s) not in SignedHeaders: {', '.join(unsigned)}"
        )
    fields = Fields()
    for name in signed_names:
        value = headers.get(":authority") if name == "host" else headers.get(name)
        if value is None:
            raise SignatureError("IncompleteSignatureException", f"signed header {name!r} is missing")
        fields.set_field(Field(name=name, values=[value]))
    raw_path, _, query = path.partition("?")
    request = AWSRequest(
        destination=URI(host=headers.get(":authority", ""), path=raw_path, query=query or None),
        method=method,
        body=None,
        fields=fields,
    )
    identity = AWSCredentialIdentity(
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        session_token=credentials.session_token,
    )
    expected = await AsyncSigV4Signer().sign(
        request=request,
        identity=identity,
        properties={"region": region, "service": SERVICE, "date": amz_date},
    )
    expected_match = _AUTHORIZATION.match(expected.fields["Authorization"].as_string())
    if expected_match is None or not _same_text(expected_match["signature"], match["signature"]):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return SignedRequest(region=region, signature=match["signature"])


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
