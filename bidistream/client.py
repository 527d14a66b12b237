"""Open a bidirectional stream to a SageMaker AI endpoint with the real SDK, every wait bounded.

Stdlib and SDK only: the smoke-test Lambda imports this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from aws_sdk_sagemaker_runtime_http2.client import (  # type: ignore[import-untyped]
    AsyncSageMakerRuntimeHTTP2Client,
)
from aws_sdk_sagemaker_runtime_http2.config import (  # type: ignore[import-untyped]
    AsyncSageMakerRuntimeHTTP2Config,
)
from aws_sdk_sagemaker_runtime_http2.models import (  # type: ignore[import-untyped]
    InvokeEndpointWithBidirectionalStreamInput,
    RequestPayloadPart,
    RequestStreamEventPayloadPart,
    ResponseStreamEventInternalStreamFailure,
    ResponseStreamEventModelStreamError,
    ResponseStreamEventPayloadPart,
)
from awscrt import io as crt_io  # type: ignore[import-untyped]
from smithy_aws_core.identity import AWSCredentialsIdentity, AWSIdentityProperties
from smithy_aws_core.identity.chain import IdentityChain, IdentityChainError
from smithy_aws_core.identity.environment import EnvironmentCredentialsResolver
from smithy_core.aio.eventstream import DuplexEventStream
from smithy_core.aio.interfaces.eventstream import EventReceiver
from smithy_core.aio.interfaces.identity import IdentityResolver
from smithy_core.exceptions import SmithyIdentityError
from smithy_http.aio.crt import AWSCRTHTTPClient

from bidistream.errors import ExitCode, StreamFailure, StreamTimeout
from bidistream.tasks import wait_cancelled

logger = logging.getLogger(__name__)

UTF8: Final = "UTF8"
BINARY: Final = "BINARY"
PARTIAL: Final = "PARTIAL"
COMPLETE: Final = "COMPLETE"

# Seconds. Opening covers credentials, connect, TLS, SigV4 and the container's WebSocket upgrade.
DEFAULT_OPEN_TIMEOUT: Final = 15.0
DEFAULT_FIRST_RESPONSE_TIMEOUT: Final = 30.0
DEFAULT_IDLE_TIMEOUT: Final = 30.0
CLOSE_TIMEOUT: Final = 5.0


# (partition, region pattern, DNS suffix) as in the AWS SDKs' partitions.json (botocore 1.44.8,
# botocore/data/partitions.json: "regionRegex" and "outputs.dnsSuffix"). China's regions are under
# amazonaws.com.cn, not amazonaws.com. A region no pattern matches is resolved in the aws partition,
# as the SDKs do.
PARTITIONS: Final = (
    ("aws", re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$"), "amazonaws.com"),
    ("aws-cn", re.compile(r"^cn\-\w+\-\d+$"), "amazonaws.com.cn"),
    ("aws-eusc", re.compile(r"^eusc\-(de)\-\w+\-\d+$"), "amazonaws.eu"),
    ("aws-iso", re.compile(r"^us\-iso\-\w+\-\d+$"), "c2s.ic.gov"),
    ("aws-iso-b", re.compile(r"^us\-isob\-\w+\-\d+$"), "sc2s.sgov.gov"),
    ("aws-iso-e", re.compile(r"^eu\-isoe\-\w+\-\d+$"), "cloud.adc-e.uk"),
    ("aws-iso-f", re.compile(r"^us\-isof\-\w+\-\d+$"), "csp.hci.ic.gov"),
    ("aws-us-gov", re.compile(r"^us\-gov\-\w+\-\d+$"), "amazonaws.com"),
)


def dns_suffix(region: str) -> str:
    """The DNS suffix of the partition ``region`` is in (``amazonaws.com.cn`` for cn-north-1)."""
    for _partition, pattern, suffix in PARTITIONS:
        if pattern.match(region):
            return suffix
    return PARTITIONS[0][2]


def default_endpoint_uri(region: str) -> str:
    """The runtime's bidirectional-streaming endpoint; the SDK's own default lacks the :8443 port."""
    return f"https://runtime.sagemaker.{region}.{dns_suffix(region)}:8443"


@dataclass(frozen=True)
class StreamTarget:
    """Where to open a stream: the endpoint and the request parameters the API takes."""

    endpoint_name: str
    region: str
    endpoint_uri: str | None = None
    ca_file: str | None = None  # trust this CA (a local endpoint) instead of the system store
    invocation_path: str | None = None  # ModelInvocationPath, e.g. "v1/listen"
    query_string: str | None = None  # ModelQueryString, e.g. "model=nova-3"
    target_variant: str | None = None

    @property
    def uri(self) -> str:
        return self.endpoint_uri or default_endpoint_uri(self.region)


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, on every wait of a stream."""

    open: float = DEFAULT_OPEN_TIMEOUT
    first_response: float = DEFAULT_FIRST_RESPONSE_TIMEOUT
    idle: float = DEFAULT_IDLE_TIMEOUT


@dataclass(frozen=True)
class Part:
    """One PayloadPart in either direction: one WebSocket frame on the container's side."""

    data: bytes
    data_type: str | None = None  # UTF8 (text frame), BINARY or None (binary frame)
    completion_state: str | None = None  # PARTIAL (more fragments follow), COMPLETE or None

    @classmethod
    def text(cls, text: str, *, completion_state: str | None = None) -> Part:
        return cls(text.encode(), UTF8, completion_state)

    @classmethod
    def binary(cls, data: bytes, *, completion_state: str | None = None) -> Part:
        return cls(data, BINARY, completion_state)

    @property
    def is_text(self) -> bool:
        return self.data_type == UTF8

    @property
    def is_final(self) -> bool:
        return self.completion_state != PARTIAL


class BidiStream:
    """An open stream: send parts, receive parts, each receive bounded by a deadline.

    The first response must come within ``first_response`` seconds of the last send; later responses
    within ``idle`` seconds of the last activity in either direction.
    """

    def __init__(
        self,
        stream: DuplexEventStream[Any, Any, Any],
        receiver: EventReceiver[Any],
        invoked_variant: str | None,
        timeouts: Timeouts,
    ) -> None:
        self._stream = stream
        self._receiver = receiver
        self.invoked_variant = invoked_variant
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._received_any = False
        self._pending: asyncio.Future[Any] | None = None
        self.parts_sent = 0
        self.parts_received = 0

    async def send(self, part: Part) -> None:
        event = RequestStreamEventPayloadPart(
            value=RequestPayloadPart(
                bytes_=part.data, data_type=part.data_type, completion_state=part.completion_state
            )
        )
        try:
            await asyncio.wait_for(self._stream.input_stream.send(event), self._timeouts.idle)
        except TimeoutError:
            raise StreamTimeout("the endpoint to take more input", self._timeouts.idle) from None
        self.parts_sent += 1
        self._last_activity = self._loop.time()

    async def close_input(self) -> None:
        """Tell the endpoint no more input follows (the signed empty frame, then END_STREAM)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._stream.input_stream.close(), CLOSE_TIMEOUT)

    async def receive(self) -> Part | None:
        """The next response part, or None when the endpoint ended the stream.

        Raises the SDK's ModelStreamError / InternalStreamFailure as they arrive, and StreamTimeout.
        """
        while True:
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._receiver.receive())
            limit, phase = (
                (self._timeouts.idle, "the next response")
                if self._received_any
                else (self._timeouts.first_response, "the first response")
            )
            remaining = self._last_activity + limit - self._loop.time()
            if remaining <= 0:
                raise StreamTimeout(phase, limit)
            done, _ = await asyncio.wait({self._pending}, timeout=remaining)
            if not done:
                continue  # re-check: a send may have moved the deadline
            pending, self._pending = self._pending, None
            event = pending.result()
            self._last_activity = self._loop.time()
            match event:
                case None:
                    return None
                case ResponseStreamEventPayloadPart(value=payload):
                    self._received_any = True
                    self.parts_received += 1
                    return Part(payload.bytes_ or b"", payload.data_type, payload.completion_state)
                case ResponseStreamEventModelStreamError(value=error):
                    raise error
                case ResponseStreamEventInternalStreamFailure(value=failure):
                    raise failure
                case _:
                    logger.warning("ignoring an event this client does not know: %r", event)

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            await wait_cancelled(self._pending)
            self._pending = None
        await self.close_input()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._receiver.close(), CLOSE_TIMEOUT)


_CRT_STREAM_COMPLETED = "AWS_ERROR_HTTP_STREAM_HAS_COMPLETED"


async def send_while_receiving(
    sending: Coroutine[None, None, None], receiving: Coroutine[None, None, None]
) -> None:
    """Run both until the receiving ends; a failed send ends it at once, with the send's own error
    (rather than the receive waiting out its idle limit and reporting a timeout)."""
    sender = asyncio.create_task(sending)
    receiver = asyncio.create_task(receiving)
    try:
        pending: set[asyncio.Task[None]] = {sender, receiver}
        while receiver in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and (error := sender.exception()) is not None:
                raise error
        receiver.result()
    finally:
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            await wait_cancelled(task)


def _is_crt_completion_noise(error: BaseException | None) -> bool:
    # awscrt's body writer fails with 2080 once the server has ended the stream, and its chunk
    # futures complain when a cancelled read resolves late. Both are harmless after a stream ends.
    while error is not None:
        if _CRT_STREAM_COMPLETED in str(error) or isinstance(error, concurrent.futures.InvalidStateError):
            return True
        error = error.__cause__ or error.__context__
    return False


def silence_crt_completion_noise(loop: asyncio.AbstractEventLoop) -> None:
    """Drop awscrt's harmless end-of-stream errors from the loop's and the interpreter's error output."""
    previous = loop.get_exception_handler()
    if getattr(previous, "silences_crt_noise", False):
        return

    def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _is_crt_completion_noise(context.get("exception")):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    on_loop_error.silences_crt_noise = True  # type: ignore[attr-defined]
    loop.set_exception_handler(on_loop_error)
    previous_hook = sys.unraisablehook
    if getattr(previous_hook, "silences_crt_noise", False):
        return

    def on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
        if not _is_crt_completion_noise(unraisable.exc_value):
            previous_hook(unraisable)

    on_unraisable.silences_crt_noise = True  # type: ignore[attr-defined]
    sys.unraisablehook = on_unraisable
    # awscrt's C callbacks (a body chunk for a stream already given up) report through sys.excepthook.
    previous_excepthook = sys.excepthook

    def on_uncaught(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
        if not _is_crt_completion_noise(value):
            previous_excepthook(kind, value, trace)

    sys.excepthook = on_uncaught


def make_transport(ca_file: str | None) -> AWSCRTHTTPClient:
    """The CRT transport (the only one that can stream both ways), trusting ``ca_file`` if given."""
    transport = AWSCRTHTTPClient()
    if ca_file is not None:
        options = crt_io.TlsContextOptions()
        options.override_default_trust_store_from_path(None, ca_file)
        # The transport has no public TLS option yet; this private attribute is what it connects with.
        transport._tls_ctx = crt_io.ClientTlsContext(options)
    return transport


async def resolve_credentials(
    region: str, limit: float
) -> IdentityResolver[AWSCredentialsIdentity, AWSIdentityProperties]:
    """The SDK's default credential chain (env incl. AWS_SESSION_TOKEN, files, container, IMDS).

    Resolved up front because the SDK 0.12 waits forever when the chain finds nothing. The chain finds
    its providers through package metadata; a bundle copied without it still gets env credentials.
    """
    resolvers: list[IdentityResolver[AWSCredentialsIdentity, AWSIdentityProperties]] = []
    problems: list[str] = []
    try:
        async with asyncio.timeout(limit):
            resolvers.append(await IdentityChain.create(AWSCredentialsIdentity, region_override=region))
            resolvers.append(EnvironmentCredentialsResolver())  # type: ignore[no-untyped-call]
            for resolver in resolvers:
                try:
                    await resolver.get_identity(properties={})
                except (IdentityChainError, SmithyIdentityError) as error:
                    problems.append(str(error).splitlines()[0] if str(error) else type(error).__name__)
                else:
                    return resolver
    except TimeoutError:
        raise StreamTimeout("AWS credentials", limit) from None
    raise StreamFailure(ExitCode.NO_CREDENTIALS, f"no AWS credentials found: {problems[0]}")


@contextlib.asynccontextmanager
async def open_stream(target: StreamTarget, timeouts: Timeouts | None = None) -> AsyncIterator[BidiStream]:
    """Open a stream to ``target``; raises the SDK's modeled errors (e.g. ModelError) or StreamFailure."""
    timeouts = timeouts or Timeouts()
    silence_crt_completion_noise(asyncio.get_running_loop())
    credentials = await resolve_credentials(target.region, timeouts.open)
    transport = make_transport(target.ca_file)
    config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
        region=target.region,
        endpoint_uri=target.uri,
        transport=transport,
        aws_credentials_identity_resolver=credentials,
    )
    client = AsyncSageMakerRuntimeHTTP2Client(config=config)
    request = InvokeEndpointWithBidirectionalStreamInput(
        endpoint_name=target.endpoint_name,
        model_invocation_path=target.invocation_path,
        model_query_string=target.query_string,
        target_variant=target.target_variant,
    )
    stream: BidiStream | None = None
    try:
        try:
            async with asyncio.timeout(timeouts.open):
                raw = await client.invoke_endpoint_with_bidirectional_stream(request)
                output, receiver = await raw.await_output()
        except TimeoutError:
            raise StreamTimeout(f"the stream to open at {target.uri}", timeouts.open) from None
        stream = BidiStream(raw, receiver, output.invoked_production_variant, timeouts)
        yield stream
    finally:
        if stream is not None:
            await stream.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)
