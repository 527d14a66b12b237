"""The no-audio rule: a session without audio or KeepAlive for the idle timeout is closed (Deepgram: 10 s).

The timeout is shortened through the model's setting so the test takes about a second; the server
closes the session (1008, with a reason that names the timeout).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from model_server.models.transcribe import TranscribeModel
from tests.support.processes import RunningProcess, model_server
from tests.transcribe.conftest import Received, listen_url, open_listen, receive_until_closed

IDLE_TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def quick_idle_server() -> Iterator[RunningProcess]:
    env = {"MODELS": "transcribe", "TRANSCRIBE_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_SECONDS)}
    with model_server(env=env) as running:
        yield running


def test_a_silent_client_is_closed_after_the_idle_timeout(quick_idle_server: RunningProcess) -> None:
    async def scenario() -> tuple[Received, float]:
        async with open_listen(listen_url(quick_idle_server)) as ws:
            started = asyncio.get_running_loop().time()
            received = await receive_until_closed(ws, Received())
            return received, asyncio.get_running_loop().time() - started

    received, waited = asyncio.run(scenario())
    assert received.close_code == 1008
    assert "idle timeout" in str(received.close_reason)
    assert waited >= IDLE_TIMEOUT_SECONDS * 0.9


def test_keepalive_messages_keep_the_session_open(quick_idle_server: RunningProcess) -> None:
    async def scenario() -> Received:
        async with open_listen(listen_url(quick_idle_server)) as ws:
            received = Received()
            reader = asyncio.create_task(receive_until_closed(ws, received))
            # A client keeps a quiet stream alive by sending KeepAlive more often than the timeout;
            # these waits pace the client, as a real one would, for twice the timeout in all.
            for _ in range(5):
                await ws.send(json.dumps({"type": "KeepAlive"}))
                await asyncio.sleep(IDLE_TIMEOUT_SECONDS * 0.4)
            assert not reader.done(), received
            await ws.send(json.dumps({"type": "CloseStream"}))
            return await reader

    received = asyncio.run(scenario())
    assert received.close_code == 1000
    assert received.messages[-1]["type"] == "Metadata"


def test_the_setting_is_checked_when_the_model_is_made() -> None:
    assert TranscribeModel(env={}).idle_timeout == 10.0
    assert TranscribeModel(env={"TRANSCRIBE_IDLE_TIMEOUT_SECONDS": "2.5"}).idle_timeout == 2.5
    with pytest.raises(ValueError, match="TRANSCRIBE_IDLE_TIMEOUT_SECONDS='soon' is not valid"):
        TranscribeModel(env={"TRANSCRIBE_IDLE_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(ValueError, match="TRANSCRIBE_WARM_DECODERS='-1' is not valid"):
        TranscribeModel(env={"TRANSCRIBE_WARM_DECODERS": "-1"})
