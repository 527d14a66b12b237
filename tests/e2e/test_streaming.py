"""The real SDK through the local endpoint to a container: data types, fragments, path and query,
container close, refused upgrades, keepalive. The endpoint and the containers are real processes."""

from __future__ import annotations

import asyncio
import io
import json
from importlib import resources

import pytest
from aws_sdk_sagemaker_runtime_http2.client import AsyncSageMakerRuntimeHTTP2Client
from aws_sdk_sagemaker_runtime_http2.config import AsyncSageMakerRuntimeHTTP2Config
from aws_sdk_sagemaker_runtime_http2.models import (
    InvokeEndpointWithBidirectionalStreamInput,
    ModelError,
    ModelStreamError,
    RequestPayloadPart,
    RequestStreamEventPayloadPart,
)
from aws_sdk_signers import AsyncEventSigner
from smithy_aws_core.auth import SigV4AuthScheme
from smithy_aws_event_stream.events import EventHeaderEncoder
from smithy_aws_event_stream.exceptions import UnmodeledEventError
from smithy_core.shapes import ShapeID

from bidistream.client import (
    BINARY,
    COMPLETE,
    PARTIAL,
    UTF8,
    Part,
    StreamTarget,
    Timeouts,
    make_transport,
    open_stream,
    send_while_receiving,
)
from bidistream.endpoint.container import ContainerSocket, UpgradeRefused
from bidistream.errors import ExitCode, StreamTimeout, describe
from bidistream.invoke import InvokeInput, run_invoke
from bidistream.tasks import wait_cancelled
from tests.e2e.conftest import ENDPOINT_NAME, REGION, EndpointFactory
from tests.support.processes import RunningProcess, wait_until

QUICK = Timeouts(open=10, first_response=10, idle=10)


def target(endpoint: RunningProcess, *, path: str | None = None, query: str | None = None) -> StreamTarget:
    return StreamTarget(
        endpoint_name=ENDPOINT_NAME,
        region=REGION,
        endpoint_uri=str(endpoint.extra["uri"]),
        ca_file=str(endpoint.extra["ca_file"]),
        invocation_path=path,
        query_string=query,
    )


async def exchange(stream_target: StreamTarget, parts: list[Part], answers: int) -> list[Part]:
    """Send ``parts``, wait for ``answers`` parts, close the input, then take the rest until the stream
    ends cleanly; returns every part received."""
    async with open_stream(stream_target, QUICK) as stream:
        for part in parts:
            await stream.send(part)
        received = [part for _ in range(answers) if (part := await stream.receive()) is not None]
        await stream.close_input()
        while (part := await stream.receive()) is not None:
            received.append(part)
    return received


def test_text_and_binary_echo_keep_their_data_types(container_endpoint: RunningProcess) -> None:
    sent = [Part.text("héllo ✓"), Part.binary(bytes(range(256))), Part.text("")]

    received = asyncio.run(exchange(target(container_endpoint), sent, answers=3))

    assert [(part.data, part.data_type) for part in received] == [
        (part.data, part.data_type) for part in sent
    ]
    assert all(part.completion_state == COMPLETE for part in received)


def test_part_without_data_type_becomes_a_binary_frame(container_endpoint: RunningProcess) -> None:
    received = asyncio.run(exchange(target(container_endpoint), [Part(b"raw")], answers=1))

    assert received == [Part(b"raw", BINARY, COMPLETE)]


def test_client_fragments_arrive_as_fin_0_then_fin_1_frames(peer_endpoint: RunningProcess) -> None:
    sent = [
        Part.text("Generat", completion_state=PARTIAL),
        Part.text("ing", completion_state=PARTIAL),
        Part.text(" response", completion_state=COMPLETE),
    ]

    received = asyncio.run(exchange(target(peer_endpoint, path="fragments"), sent, answers=1))

    text, continuation = 1, 0
    assert json.loads(received[0].data) == {
        "frames": [[text, False, 7], [continuation, False, 3], [continuation, True, 9]]
    }


def test_container_fragments_arrive_as_partial_parts_then_complete(peer_endpoint: RunningProcess) -> None:
    received = asyncio.run(
        exchange(target(peer_endpoint, path="fragments"), [Part.binary(b"abcdefghi")], answers=5)
    )

    report, *fragments = received
    assert report.data_type == UTF8
    assert [(part.data, part.data_type, part.completion_state) for part in fragments] == [
        (b"abc", BINARY, PARTIAL),
        (b"def", BINARY, PARTIAL),
        (b"ghi", BINARY, PARTIAL),
        (b"", BINARY, COMPLETE),  # websockets ends an iterated message with an empty final frame
    ]


def test_invocation_path_and_query_reach_the_container(peer_endpoint: RunningProcess) -> None:
    received = asyncio.run(
        exchange(
            target(peer_endpoint, path="query", query="model=nova-3&note=a%20b"), [Part.text("?")], answers=1
        )
    )

    assert json.loads(received[0].data) == {"path": "/query", "query": "model=nova-3&note=a%20b"}


def test_container_close_reaches_the_client_as_model_stream_error_with_its_code(
    peer_endpoint: RunningProcess,
) -> None:
    async def run() -> None:
        async with open_stream(
            target(peer_endpoint, path="close", query="code=4001&reason=done"), QUICK
        ) as stream:
            await stream.send(Part.text("bye"))
            await stream.receive()

    with pytest.raises(ModelStreamError) as raised:
        asyncio.run(run())

    assert (raised.value.error_code, raised.value.message) == ("4001", "done")


def test_real_container_close_code_for_invalid_utf8_text(container_endpoint: RunningProcess) -> None:
    async def run() -> None:
        async with open_stream(target(container_endpoint), QUICK) as stream:
            await stream.send(Part(b"\xff\xfe", UTF8))
            await stream.receive()

    with pytest.raises(ModelStreamError) as raised:
        asyncio.run(run())

    assert raised.value.error_code == "1007"


def test_refused_upgrade_is_a_424_model_error_with_the_container_status(
    peer_endpoint: RunningProcess,
) -> None:
    async def run() -> None:
        async with open_stream(target(peer_endpoint, path="reject"), QUICK):
            pytest.fail("the stream must not open")

    with pytest.raises(ModelError) as raised:
        asyncio.run(run())

    assert raised.value.original_status_code == 400
    assert "unknown model parameter" in (raised.value.original_message or "")


def test_container_down_is_a_424_model_error(down_endpoint: RunningProcess) -> None:

    async def run() -> None:
        async with open_stream(target(down_endpoint), QUICK):
            pytest.fail("the stream must not open")

    with pytest.raises(ModelError) as raised:
        asyncio.run(run())

    assert "Failed to establish WebSocket connection" in (raised.value.message or "")
    assert raised.value.original_status_code is None


@pytest.fixture(scope="module")
def fast_ping_endpoints(peer: RunningProcess, start_endpoint: EndpointFactory) -> dict[str, RunningProcess]:
    """Endpoints pinging every 0.2 s, closing after 3 misses: one before the mute port, one before echo."""
    settings = ("--ping-interval", "0.2", "--max-missed-pongs", "3")
    return {
        "mute": start_endpoint(f"http://127.0.0.1:{peer.extra['mute_port']}", *settings),
        "answering": start_endpoint(peer.base_url, *settings),
    }


def test_container_that_never_answers_pings_is_closed_with_1011(
    fast_ping_endpoints: dict[str, RunningProcess],
) -> None:
    async def run() -> None:
        async with open_stream(target(fast_ping_endpoints["mute"]), QUICK) as stream:
            await stream.receive()

    with pytest.raises(ModelStreamError) as raised:
        asyncio.run(run())

    assert raised.value.error_code == "1011"
    assert "3 pings" in (raised.value.message or "")


def test_container_that_answers_pings_stays_open(fast_ping_endpoints: dict[str, RunningProcess]) -> None:
    # Ten ping intervals of silence: the only way this stream ends is our own first-response deadline.
    async def run() -> None:
        async with open_stream(target(fast_ping_endpoints["answering"]), Timeouts(10, 2.0, 10)) as stream:
            await stream.receive()

    with pytest.raises(StreamTimeout, match="first response"):
        asyncio.run(run())


def test_large_parts_pass_the_flow_control_windows_both_ways(
    container_endpoint: RunningProcess,
) -> None:
    big = bytes(range(256)) * 4096 * 3  # 3 MiB: many HTTP/2 frames and window updates each way

    received = asyncio.run(
        exchange(target(container_endpoint), [Part.binary(big), Part.text("after")], answers=2)
    )

    assert [(part.data, part.data_type) for part in received] == [(big, BINARY), (b"after", UTF8)]


def test_failing_streams_leave_a_concurrent_stream_untouched(
    container_endpoint: RunningProcess, peer_endpoint: RunningProcess
) -> None:
    async def healthy() -> list[Part]:
        async with open_stream(target(container_endpoint), QUICK) as stream:
            answers = []
            for index in range(20):
                await stream.send(Part.text(f"message {index}"))
                answers.append(await stream.receive())
            return [part for part in answers if part is not None]

    async def failing(path: str) -> BaseException | None:
        try:
            async with open_stream(target(container_endpoint, path=path), QUICK) as stream:
                await stream.send(Part(b"\xff", UTF8))  # invalid UTF-8: the container closes with 1007
                await stream.receive()
        except Exception as error:
            return error
        return None

    async def run() -> tuple[list[Part], list[BaseException | None]]:
        results = await asyncio.gather(
            healthy(), failing("bad//path"), failing("invocations-bidirectional-stream")
        )
        return results[0], [results[1], results[2]]

    answers, errors = asyncio.run(run())

    assert [part.data for part in answers] == [f"message {index}".encode() for index in range(20)]
    assert [type(error).__name__ for error in errors] == ["InputValidationError", "ModelStreamError"]


class _WrongChainSigV4(SigV4AuthScheme):
    """Signs the request correctly but chains the events from the wrong seed signature."""

    def event_signer(self, *, request: object) -> AsyncEventSigner:
        return AsyncEventSigner(initial_signature=b"0" * 64, event_encoder_cls=EventHeaderEncoder)


def test_badly_signed_event_ends_the_stream_with_an_access_denied_error(
    container_endpoint: RunningProcess,
) -> None:
    stream_target = target(container_endpoint)

    async def run() -> None:
        config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
            region=REGION,
            endpoint_uri=stream_target.endpoint_uri,
            transport=make_transport(stream_target.ca_file),
            auth_schemes={ShapeID("aws.auth#sigv4"): _WrongChainSigV4(service="sagemaker")},
        )
        client = AsyncSageMakerRuntimeHTTP2Client(config=config)
        try:
            stream = await client.invoke_endpoint_with_bidirectional_stream(
                InvokeEndpointWithBidirectionalStreamInput(endpoint_name=ENDPOINT_NAME)
            )
            _, receiver = await asyncio.wait_for(stream.await_output(), 10)
            await stream.input_stream.send(
                RequestStreamEventPayloadPart(value=RequestPayloadPart(bytes_=b"hi", data_type=UTF8))
            )
            await asyncio.wait_for(receiver.receive(), 10)
        finally:
            await client.close()

    with pytest.raises(UnmodeledEventError) as raised:
        asyncio.run(run())

    assert describe(raised.value)[0] == ExitCode.ACCESS_DENIED
    assert raised.value.code == "InvalidSignatureException"


def test_a_greeting_sent_right_after_the_upgrade_reaches_the_client(peer_endpoint: RunningProcess) -> None:
    # The peer writes its greeting at once, so it usually shares a TCP read with the 101 response.
    for _ in range(5):
        received = asyncio.run(exchange(target(peer_endpoint, path="greet"), [Part.text("hi")], answers=2))

        assert [(part.data, part.data_type) for part in received] == [(b"hello-on-open", UTF8), (b"hi", UTF8)]


def test_an_unanswered_upgrade_closes_its_tcp_connection(peer: RunningProcess) -> None:
    url = f"http://127.0.0.1:{peer.extra['silent_port']}"
    closed_before = peer.output().count("silent: closed")

    async def run() -> UpgradeRefused:
        try:
            await ContainerSocket.connect(url, "/invocations-bidirectional-stream", limit=0.3)
        except UpgradeRefused as error:
            # Hold the error (and so its frames) while the peer is watched: a socket left open
            # must not be closed behind the test's back by garbage collection.
            refused = error
            await asyncio.to_thread(
                wait_until,
                lambda: peer.output().count("silent: closed") > closed_before,
                timeout=10,
                what="the silent peer to see its connection closed",
            )
            return refused
        pytest.fail("the upgrade must time out")

    refused = asyncio.run(run())

    assert "no WebSocket upgrade" in refused.message


@pytest.mark.parametrize("after_ms", [0, 2, 5, 10, 20, 50, 100, 300])
def test_a_cancelled_invoke_ends_cancelled_at_any_point(
    container_endpoint: RunningProcess, after_ms: int
) -> None:
    """Ctrl-C: asyncio's runner cancels the main task, and only a CancelledError that reaches it becomes
    the interrupt (exit 130). Cancelled while it opens, streams or reads, an invoke must end cancelled,
    never swallow the cancellation and stream on."""
    speech = target(container_endpoint, path="v1/listen", query="encoding=linear16&sample_rate=16000")
    output = io.StringIO()

    async def invoke() -> ExitCode:
        with resources.as_file(resources.files("bidistream.data") / "speech-sample.wav") as clip:
            return await run_invoke(
                speech,
                QUICK,
                InvokeInput(audio=clip),
                stdin=io.StringIO(),
                stdout=output,
                stderr=output,
                tty=False,
            )

    async def cancel_after_a_while() -> str:
        task = asyncio.create_task(invoke())
        await asyncio.sleep(after_ms / 1000)
        task.cancel()
        try:
            return f"ended with {await task!r}"
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(cancel_after_a_while()) == "cancelled", output.getvalue()


async def slow_to_cancel(cancelled: asyncio.Event) -> None:
    """Waits until cancelled, then takes a moment to wind down (as the SDK's writer ends its frame)."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        cancelled.set()
        await asyncio.sleep(0.2)
        raise


def test_ctrl_c_while_a_stream_winds_down_is_not_swallowed() -> None:
    """The stream has ended (the receiving side returned) and the send is being cancelled, which can take
    a moment: Ctrl-C then must still end the caller cancelled, not be taken as the cancelled send's own
    ending and let the program stream on."""

    async def receiving() -> None:
        return  # the endpoint ended the stream

    async def scenario() -> str:
        send_cancelled = asyncio.Event()
        task = asyncio.create_task(send_while_receiving(slow_to_cancel(send_cancelled), receiving()))
        await send_cancelled.wait()
        task.cancel()  # Ctrl-C, as asyncio's runner delivers it
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "returned"

    assert asyncio.run(scenario()) == "cancelled"


def test_ctrl_c_while_waiting_for_a_cancelled_task_is_not_swallowed() -> None:
    """What closing a stream does with its pending read: cancel it and wait for it to end. A cancellation
    of the waiting task meanwhile must reach it; the read's own cancellation must not."""

    async def close(pending: asyncio.Task[None]) -> str:
        pending.cancel()
        await wait_cancelled(pending)
        return "closed"

    async def scenario(interrupt: bool) -> str:
        read_cancelled = asyncio.Event()
        pending = asyncio.create_task(slow_to_cancel(read_cancelled))
        await asyncio.sleep(0)
        closing = asyncio.create_task(close(pending))
        await read_cancelled.wait()
        if interrupt:
            closing.cancel()
        try:
            return await closing
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(scenario(interrupt=False)) == "closed"
    assert asyncio.run(scenario(interrupt=True)) == "cancelled"
