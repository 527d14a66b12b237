"""WebSocket sessions against a real server process: routes, query strings, frames and close codes."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.container.conftest import (
    MAX_MESSAGE_BYTES,
    closed_with,
    log_lines,
    open_session,
    session_ends,
    upgrade_refused,
    ws_url,
)
from tests.support.processes import RunningProcess, wait_until


def test_echo_keeps_text_as_text_and_binary_as_binary(server: RunningProcess) -> None:
    async def scenario() -> list[str | bytes]:
        async with open_session(ws_url(server)) as ws:
            answers = []
            for message in ["héllo", b"\x00\xffaudio", "{}", b""]:
                await ws.send(message)
                answers.append(await ws.recv())
            return answers

    assert asyncio.run(scenario()) == ["héllo", b"\x00\xffaudio", "{}", b""]


def test_fragmented_messages_arrive_whole(server: RunningProcess) -> None:
    async def scenario() -> list[str | bytes]:
        async with open_session(ws_url(server)) as ws:
            # An iterable is sent as one fragmented message: what CompletionState=PARTIAL becomes.
            await ws.send(["Hello ", "World"])
            text = await ws.recv()
            await ws.send([b"\x01" * 10, b"\x02" * 10, b"\x03"])
            data = await ws.recv()
            return [text, data]

    assert asyncio.run(scenario()) == ["Hello World", b"\x01" * 10 + b"\x02" * 10 + b"\x03"]


def test_pings_are_answered_with_pongs(server: RunningProcess) -> None:
    async def scenario() -> float:
        async with open_session(ws_url(server), ping_interval=None) as ws:
            pong = await ws.ping(b"are you there")
            return await asyncio.wait_for(pong, 5.0)

    assert asyncio.run(scenario()) >= 0.0


def test_custom_path_receives_the_parsed_query(server: RunningProcess) -> None:
    async def scenario() -> dict[str, object]:
        url = ws_url(server, "/test/query", "model=nova-3&language=en%2DUS&sample_rate=16000")
        async with open_session(url) as ws:
            await ws.send("params")
            return dict(json.loads(await ws.recv()))

    assert asyncio.run(scenario()) == {
        "path": "/test/query",
        "params": {"model": "nova-3", "language": "en-US", "sample_rate": "16000"},
    }


def test_unknown_path_is_refused_with_404(server: RunningProcess) -> None:
    status, _ = asyncio.run(upgrade_refused(ws_url(server, "/v9/nothing-here")))
    assert status == 404


def test_model_rejects_unknown_query_parameter_with_400_and_reason(server: RunningProcess) -> None:
    status, body = asyncio.run(upgrade_refused(ws_url(server, "/test/query", "model=x&colour=blue")))
    assert (status, body.strip()) == (400, "unknown parameter: colour")


def test_model_rejects_bad_query_value_with_400(server: RunningProcess) -> None:
    status, body = asyncio.run(upgrade_refused(ws_url(server, "/test/query", "sample_rate=fast")))
    assert status == 400
    assert "sample_rate must be an integer" in body


def test_echo_takes_no_query_parameters(server: RunningProcess) -> None:
    status, body = asyncio.run(upgrade_refused(ws_url(server, query="model=nova-3")))
    assert status == 400
    assert "takes no query parameters" in body


def test_repeated_or_malformed_query_is_refused_with_400(server: RunningProcess) -> None:
    repeated = asyncio.run(upgrade_refused(ws_url(server, "/test/query", "model=a&model=b")))
    malformed = asyncio.run(upgrade_refused(ws_url(server, "/test/query", "model")))
    assert repeated[0] == 400 and "more than once" in repeated[1]
    assert malformed[0] == 400 and "malformed query string" in malformed[1]


def test_message_over_the_size_limit_is_closed_with_1009(server: RunningProcess) -> None:
    async def scenario(message: bytes | list[bytes]) -> int | None:
        async with open_session(ws_url(server), max_size=None) as ws:
            await ws.send(message)
            code, _ = await closed_with(ws)
            return code

    assert asyncio.run(scenario(b"x" * (MAX_MESSAGE_BYTES + 1))) == 1009
    # The limit counts a fragmented message as a whole.
    assert asyncio.run(scenario([b"x" * (MAX_MESSAGE_BYTES // 2)] * 3)) == 1009


def test_message_at_the_size_limit_is_echoed(server: RunningProcess) -> None:
    async def scenario() -> int:
        async with open_session(ws_url(server), max_size=None) as ws:
            await ws.send(b"x" * MAX_MESSAGE_BYTES)
            return len(await ws.recv())

    assert asyncio.run(scenario()) == MAX_MESSAGE_BYTES


def test_invalid_utf8_text_is_closed_with_1007(server: RunningProcess) -> None:
    async def scenario() -> int | None:
        async with open_session(ws_url(server)) as ws:
            await ws.send(b"\xff\xfe not utf-8", text=True)
            code, _ = await closed_with(ws)
            return code

    assert asyncio.run(scenario()) == 1007


def test_frame_type_the_model_does_not_take_is_closed_with_1003(server: RunningProcess) -> None:
    async def scenario() -> tuple[bytes | str, int | None, str | None]:
        async with open_session(ws_url(server, "/test/binary-only")) as ws:
            await ws.send(b"audio")
            echoed = await ws.recv()
            await ws.send('{"type": "KeepAlive"}')
            code, reason = await closed_with(ws)
            return echoed, code, reason

    echoed, code, reason = asyncio.run(scenario())
    assert (echoed, code) == (b"audio", 1003)
    assert reason == "BinaryOnlyHandler takes no text messages"


def test_model_finishing_closes_with_1000(server: RunningProcess) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with open_session(ws_url(server, "/test/query")) as ws:
            await ws.send("end")
            return await closed_with(ws)

    assert asyncio.run(scenario()) == (1000, "done")


def test_model_error_codes_reach_the_client(server: RunningProcess) -> None:
    async def scenario(message: str) -> tuple[int | None, str | None]:
        async with open_session(ws_url(server, "/test/failing")) as ws:
            await ws.send(message)
            return await closed_with(ws)

    assert asyncio.run(scenario("crash")) == (1011, "internal error in the model")
    assert asyncio.run(scenario("bad")) == (1007, "expected JSON")
    # A reason longer than a Close frame holds (123 bytes) is cut at a character boundary.
    assert asyncio.run(scenario("verbose")) == (1007, "é" * 61)
    wait_until(
        lambda: any(line.get("event") == "model_error" for line in log_lines(server)),
        timeout=5,
        what="the model error in the log",
    )
    error = next(line for line in log_lines(server) if line.get("event") == "model_error")
    assert error["error"] == "RuntimeError: the model fell over"
    assert "Traceback" in error["traceback"]


def test_a_failing_session_does_not_disturb_another(server: RunningProcess) -> None:
    async def scenario() -> tuple[list[str | bytes], int | None]:
        async with (
            open_session(ws_url(server)) as healthy,
            open_session(ws_url(server, "/test/failing")) as failing,
        ):
            await healthy.send("before")
            answers = [await healthy.recv()]
            await failing.send("crash")
            code, _ = await closed_with(failing)
            await healthy.send("after")
            answers.append(await healthy.recv())
            return answers, code

    answers, code = asyncio.run(scenario())
    assert (answers, code) == (["before", "after"], 1011)


def test_model_sets_its_own_idle_timeout(server: RunningProcess) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with open_session(ws_url(server, "/test/quick-idle")) as ws:
            return await closed_with(ws)

    assert asyncio.run(scenario()) == (1008, "idle timeout: no message for 0.3 s")


def test_plain_get_on_a_websocket_path_is_a_clear_400(server: RunningProcess) -> None:
    async def scenario() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(ws_url(server).replace("ws:", "http:")) as response,
        ):
            return response.status, await response.text()

    status, body = asyncio.run(scenario())
    assert status == 400
    assert "send a WebSocket upgrade" in body


def test_each_session_end_is_one_json_log_line(server: RunningProcess) -> None:
    async def scenario() -> None:
        async with open_session(ws_url(server, "/test/query")) as ws:
            for _ in range(5):
                await ws.send("ping")
                await ws.recv()
            await ws.send(b"\x00" * 10)  # QueryHandler takes no binary: 1003
            await closed_with(ws)

    before = len(session_ends(server))
    asyncio.run(scenario())
    wait_until(lambda: len(session_ends(server)) > before, timeout=5, what="the session_end log line")
    end = session_ends(server)[-1]
    assert end["path"] == "/test/query"
    assert (end["messages_in"], end["messages_out"]) == (6, 5)
    assert (end["bytes_in"], end["bytes_out"]) == (5 * 4 + 10, 5 * 4)
    assert (end["close_code"], end["closed_by"]) == (1003, "server")
    assert end["duration_s"] >= 0
    assert len(session_ends(server)) == before + 1  # one line per session, nothing per frame
