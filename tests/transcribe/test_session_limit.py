"""The transcribe model's own session cap (``TRANSCRIBE_MAX_SESSIONS``): each session holds a ~58 MB
decoder, so the model refuses sessions past its cap with 1013 long before the server's ``MAX_SESSIONS``,
while other routes keep serving."""

from __future__ import annotations

import asyncio
import json

from tests.container.conftest import closed_with, open_session
from tests.support.processes import model_server, wait_until
from tests.transcribe.conftest import SPEECH, Received, listen_url, open_listen, read_pcm, stream_clip


def test_a_session_past_the_models_cap_gets_1013_while_other_routes_still_serve() -> None:
    env = {"MODELS": "echo,transcribe", "TRANSCRIBE_MAX_SESSIONS": "1", "TRANSCRIBE_WARM_DECODERS": "1"}
    with model_server(env=env) as server:
        url = listen_url(server)
        echo_url = f"ws://127.0.0.1:{server.port}/invocations-bidirectional-stream"

        async def scenario() -> tuple[
            tuple[int | None, str | None], str | bytes, tuple[int | None, str | None]
        ]:
            async with open_listen(url) as first:
                async with open_listen(url) as second:
                    refused = await closed_with(second)
                async with open_session(echo_url) as echo:
                    await echo.send("echo is not capped by transcribe")
                    echoed = await echo.recv()
                # The first session was not disturbed: it still ends normally when asked.
                await first.send(json.dumps({"type": "CloseStream"}))
                first_closed = await closed_with(first)
            return refused, echoed, first_closed

        refused, echoed, first_closed = asyncio.run(scenario())
        assert refused == (1013, "/v1/listen is at its model's session limit (1)")
        assert echoed == "echo is not capped by transcribe"
        assert first_closed[0] == 1000

        # The slot is free again once the server has ended the first session.
        pcm = read_pcm(SPEECH / "s02.wav")
        outcomes: list[Received] = []

        def a_new_session_is_served() -> bool:
            outcomes.append(asyncio.run(stream_clip(url, pcm)))
            return outcomes[-1].close_code == 1000

        wait_until(a_new_session_is_served, timeout=30, what="a new v1/listen session after the first ended")
        assert outcomes[-1].final_text() == "the weather is nice today"


def test_without_a_cap_of_its_own_the_model_takes_a_second_session() -> None:
    """The twin: the 1013 above comes from TRANSCRIBE_MAX_SESSIONS, not from opening two sessions."""
    with model_server(env={"MODELS": "transcribe", "TRANSCRIBE_MAX_SESSIONS": "2"}) as server:
        url = listen_url(server)

        async def scenario() -> list[int | None]:
            codes = []
            async with open_listen(url) as first, open_listen(url) as second:
                for ws in (first, second):
                    await ws.send(json.dumps({"type": "CloseStream"}))
                    codes.append((await closed_with(ws))[0])
            return codes

        assert asyncio.run(scenario()) == [1000, 1000]


def test_a_multichannel_session_counts_one_decoder_per_channel() -> None:
    """Three channels need three decoders: with a cap of two the session is closed with 1013 when its
    audio starts, and its twin, two channels, is served."""
    with model_server(env={"MODELS": "transcribe", "TRANSCRIBE_MAX_SESSIONS": "2"}) as server:

        async def outcome(channels: int) -> tuple[int | None, str | None]:
            query = f"channels={channels}&multichannel=true"
            async with open_listen(listen_url(server, query)) as ws:
                await ws.send(bytes(3200 * channels))  # 0.1 s of silence on every channel
                await ws.send(json.dumps({"type": "CloseStream"}))
                return await closed_with(ws)

        assert asyncio.run(outcome(3)) == (
            1013,
            "3 channel(s) need 3 decoder(s); 0 of this model's 2 are in use (TRANSCRIBE_MAX_SESSIONS)",
        )
        assert asyncio.run(outcome(2))[0] == 1000
