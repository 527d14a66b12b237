"""v1/speak through the real server process: every message, the rules around them, and barge-in."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # the reference G.711 coder (Sun's g711.c): deprecated, still in 3.12
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop
import asyncio
import json
from typing import Any

import pytest

from tests.container.conftest import upgrade_refused
from tests.speak.conftest import (
    CLEAR,
    CLOSE,
    FLUSH,
    Exchange,
    open_speak,
    receive,
    receive_until,
    receive_until_closed,
    speak,
    speak_url,
    spoken,
)
from tests.support.processes import RunningProcess, model_server

SENTENCE = "The weather is nice today."
#: Long enough that its audio is still being made and sent when the test barges in.
LONG_TEXT = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 40))


def seconds(audio: bytes, rate: int, width: int = 2) -> float:
    return len(audio) / width / rate


def test_metadata_comes_first_and_names_the_voice_that_speaks(speak_server: RunningProcess) -> None:
    metadata, _ = asyncio.run(spoken(speak_url(speak_server, "model=aura-2-helena-en"), SENTENCE))

    assert set(metadata) >= {"type", "request_id", "model_name", "model_version", "model_uuid"}
    assert metadata["model_name"] == "espeak-us-female"
    assert metadata["model_version"].startswith("1.52")
    assert len(metadata["request_id"]) == 32


def test_speak_and_flush_give_audio_of_the_default_rate_then_flushed(speak_server: RunningProcess) -> None:
    async def run() -> Exchange:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(speak(SENTENCE))
            await ws.send(FLUSH)
            return await receive_until(ws, "Flushed")

    exchange = asyncio.run(run())

    assert exchange.kinds() == ["audio", "Flushed"]
    assert exchange.messages("Flushed") == [{"type": "Flushed", "sequence_id": 0}]
    audio = exchange.audio()
    assert len(audio) % 2 == 0
    assert 1.0 < seconds(audio, 24000) < 4.0  # linear16 at 24 kHz, Deepgram's default


def test_each_flush_gets_the_next_sequence_id_after_its_own_audio(speak_server: RunningProcess) -> None:
    async def run() -> Exchange:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            for text in ("One.", "Two.", "Three."):
                await ws.send(speak(text))
                await ws.send(FLUSH)
            exchange = Exchange()
            for _ in range(3):
                await receive_until(ws, "Flushed", exchange)
            return exchange

    exchange = asyncio.run(run())

    assert exchange.kinds() == ["audio", "Flushed", "audio", "Flushed", "audio", "Flushed"]
    assert [message["sequence_id"] for message in exchange.messages("Flushed")] == [0, 1, 2]


def test_complete_sentences_are_spoken_before_any_flush(speak_server: RunningProcess) -> None:
    async def run() -> bytes:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(speak("The first sentence is complete. The second is not"))
            first = await receive(ws)  # no Flush sent: this is the first sentence's audio
            assert isinstance(first, bytes), first
            await ws.send(FLUSH)
            return (await receive_until(ws, "Flushed", Exchange([first]))).audio()

    audio = asyncio.run(run())

    assert seconds(audio, 24000) > 2.5  # both sentences, the unfinished one after Flush


def test_audio_streams_in_many_frames_while_a_long_text_is_spoken(speak_server: RunningProcess) -> None:
    async def run() -> Exchange:
        async with open_speak(speak_url(speak_server, "sample_rate=8000")) as ws:
            await receive(ws)
            await ws.send(speak(LONG_TEXT))
            await ws.send(FLUSH)
            return await receive_until(ws, "Flushed")

    exchange = asyncio.run(run())

    frames = [item for item in exchange.items if isinstance(item, bytes)]
    assert len(frames) > 100  # about 100 ms of audio a frame, not one block per flush
    assert max(len(frame) for frame in frames) < 8000 * 2  # no frame holds a second


@pytest.mark.parametrize(
    ("query", "rate", "width"),
    [
        ("encoding=linear16&sample_rate=8000", 8000, 2),
        ("encoding=linear16&sample_rate=16000", 16000, 2),
        ("sample_rate=32000", 32000, 2),
        ("sample_rate=48000", 48000, 2),
        ("encoding=mulaw", 8000, 1),
        ("encoding=alaw&sample_rate=16000", 16000, 1),
    ],
)
def test_encoding_and_rate_set_the_bytes_per_second(
    speak_server: RunningProcess, query: str, rate: int, width: int
) -> None:
    _, reference = asyncio.run(spoken(speak_url(speak_server), SENTENCE))
    _, audio = asyncio.run(spoken(speak_url(speak_server, query), SENTENCE))

    assert seconds(audio, rate, width) == pytest.approx(seconds(reference, 24000), abs=0.01)


@pytest.mark.parametrize(
    ("encoding", "decode", "other"),
    [("mulaw", audioop.ulaw2lin, audioop.alaw2lin), ("alaw", audioop.alaw2lin, audioop.ulaw2lin)],
)
def test_g711_audio_decodes_to_the_loudness_of_the_linear16_audio(
    speak_server: RunningProcess, encoding: str, decode: Any, other: Any
) -> None:
    # espeak-ng adds random noise to voiced sounds, so two sessions never match byte for byte; the
    # tables themselves are checked against the reference encoder in test_audio.py.
    _, linear = asyncio.run(spoken(speak_url(speak_server, "encoding=linear16&sample_rate=8000"), SENTENCE))
    _, g711 = asyncio.run(spoken(speak_url(speak_server, f"encoding={encoding}&sample_rate=8000"), SENTENCE))

    loudness = audioop.rms(linear, 2)
    assert len(g711) == pytest.approx(len(linear) / 2, rel=0.01)  # one byte a sample, not two
    assert audioop.rms(decode(g711, 2), 2) == pytest.approx(loudness, rel=0.1)
    assert audioop.rms(other(g711, 2), 2) != pytest.approx(loudness, rel=0.5)  # the other law: far off


def test_clear_mid_speech_stops_the_audio_before_cleared(speak_server: RunningProcess) -> None:
    async def run() -> tuple[int, Exchange]:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(speak(LONG_TEXT))
            await ws.send(FLUSH)
            heard = 0
            while heard < 48000:  # one second of audio: the text is being spoken now
                item = await receive(ws)
                assert isinstance(item, bytes), item
                heard += len(item)
            await ws.send(CLEAR)
            await receive_until(ws, "Cleared")
            await ws.send(FLUSH)  # nothing buffered: Flushed comes at once, after any audio still queued
            return heard, await receive_until(ws, "Flushed")

    heard, after_cleared = asyncio.run(run())

    assert after_cleared.audio() == b""  # no audio of the cleared text after Cleared
    assert after_cleared.messages() == [{"type": "Flushed", "sequence_id": 2}]
    assert heard < 48000 * 20  # the long text is about a minute of audio


def test_without_clear_the_rest_of_the_long_text_arrives(speak_server: RunningProcess) -> None:
    """The twin of the barge-in test: there was audio left to drop."""

    async def run() -> Exchange:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(speak(LONG_TEXT))
            await ws.send(FLUSH)
            return await receive_until(ws, "Flushed")

    assert seconds(asyncio.run(run()).audio(), 24000) > 30


def test_text_cleared_before_a_flush_is_never_spoken(speak_server: RunningProcess) -> None:
    async def run() -> Exchange:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(speak("This text is buffered and then dropped"))
            await ws.send(CLEAR)
            await ws.send(FLUSH)
            return await receive_until(ws, "Flushed")

    exchange = asyncio.run(run())

    assert exchange.kinds() == ["Cleared", "Flushed"]
    assert exchange.messages() == [
        {"type": "Cleared", "sequence_id": 0},
        {"type": "Flushed", "sequence_id": 1},
    ]


def test_close_speaks_what_is_buffered_then_closes_normally(speak_server: RunningProcess) -> None:
    async def run() -> tuple[Exchange, int | None]:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(speak("Not flushed, but spoken before the close"))
            await ws.send(CLOSE)
            exchange = await receive_until_closed(ws)
            return exchange, ws.close_code

    exchange, code = asyncio.run(run())

    assert code == 1000
    assert exchange.kinds() == ["audio"]
    assert seconds(exchange.audio(), 24000) > 1.0


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "not JSON"),
        ('{"type": "Shout", "text": "x"}', "unknown message type 'Shout'; expected one of Speak, Flush"),
        ('{"type": "Speak"}', 'a Speak message needs a string "text"'),
        ('{"type": "Speak", "text": 5}', 'a Speak message needs a string "text"'),
        (json.dumps({"type": "Speak", "text": "a" * 2001}), "2001 characters; at most 2000 per Speak"),
        ("[1, 2]", 'a JSON object with a string "type"'),
    ],
)
def test_a_bad_message_gets_an_error_and_the_session_goes_on(
    speak_server: RunningProcess, message: str, reason: str
) -> None:
    async def run() -> tuple[dict[str, object] | bytes, Exchange]:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(message)
            error = await receive(ws)
            await ws.send(speak(SENTENCE))
            await ws.send(FLUSH)
            return error, await receive_until(ws, "Flushed")

    error, after = asyncio.run(run())

    assert isinstance(error, dict) and error["type"] == "Error", error
    assert reason in str(error["description"])
    assert error["variant"] == "SchemaError"  # as v1/listen names it
    assert error["message"] == message[:1024]  # the client's text, quoted back
    assert seconds(after.audio(), 24000) > 1.0


def test_the_21st_flush_in_a_minute_gets_a_warning_and_is_not_processed(speak_server: RunningProcess) -> None:
    async def run() -> Exchange:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            for _ in range(21):
                await ws.send(FLUSH)
            exchange = Exchange()
            while len(exchange.messages()) < 21:
                exchange.items.append(await receive(ws))
            return exchange

    exchange = asyncio.run(run())

    assert [message["sequence_id"] for message in exchange.messages("Flushed")] == list(range(20))
    (warning,) = exchange.messages("Warning")
    assert set(warning) == {"type", "description", "code"}
    assert warning["code"] == "FLUSH_LIMIT"
    assert "at most 20 Flush messages in 60 seconds" in warning["description"]


def test_a_binary_message_closes_with_1003(speak_server: RunningProcess) -> None:
    async def run() -> tuple[int | None, str | None]:
        async with open_speak(speak_url(speak_server)) as ws:
            await receive(ws)
            await ws.send(b"\x00\x01")
            await receive_until_closed(ws)
            return ws.close_code, ws.close_reason

    code, reason = asyncio.run(run())

    assert code == 1003
    assert reason == "SpeakSession takes no binary messages"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("voice=x", "unknown query parameter(s) voice; v1/speak takes encoding, mip_opt_out, model"),
        ("container=wav", "container applies to Deepgram's REST v1/speak only"),
        ("model=robot", "model='robot' is not available: choose one of espeak-us-female"),
        ("model=aura-2-javier-es", "this endpoint speaks English only"),
        ("encoding=mp3", "encoding='mp3' is not supported: the streaming API sends linear16, mulaw, alaw"),
        ("sample_rate=44100", "sample_rate=44100 is not supported with encoding=linear16"),
        ("encoding=mulaw&sample_rate=24000", "choose 8000, 16000 (default 8000)"),
        ("sample_rate=%D9%A1%D9%A6%D9%A0%D9%A0%D9%A0", "must be a whole number of hertz"),
        ("mip_opt_out=yes", "mip_opt_out='yes' is not valid: must be true or false"),
    ],
)
def test_a_bad_query_is_refused_with_400_and_a_reason(
    speak_server: RunningProcess, query: str, reason: str
) -> None:
    status, body = asyncio.run(upgrade_refused(speak_url(speak_server, query)))

    assert status == 400
    assert reason in body


@pytest.mark.parametrize(
    ("model", "voice"),
    [
        ("aura-2-thalia-en", "espeak-us-female"),
        ("aura-asteria-en", "espeak-us-female"),
        ("aura-2-zeus-en", "espeak-us-male"),
        ("aura-helios-en", "espeak-gb-male"),
        ("aura-2-pandora-en", "espeak-gb-female"),
        ("espeak-gb-female", "espeak-gb-female"),
    ],
)
def test_deepgram_and_local_voice_names_are_served(
    speak_server: RunningProcess, model: str, voice: str
) -> None:
    metadata, audio = asyncio.run(
        spoken(speak_url(speak_server, f"model={model}&mip_opt_out=true"), "Hello.")
    )

    assert metadata["model_name"] == voice
    assert len(audio) > 0


def test_a_quiet_session_is_closed_after_the_idle_timeout() -> None:
    async def run(url: str) -> tuple[int | None, str | None]:
        async with open_speak(url) as ws:
            await receive(ws)
            await receive_until_closed(ws)
            return ws.close_code, ws.close_reason

    with model_server(env={"MODELS": "speak", "SPEAK_IDLE_TIMEOUT_SECONDS": "0.5"}) as server:
        code, reason = asyncio.run(run(speak_url(server)))

    assert code == 1008
    assert reason == "idle timeout: no message for 0.5 s"


def test_sessions_over_the_model_cap_get_1013() -> None:
    async def run(url: str) -> tuple[int | None, str | None, int]:
        async with open_speak(url) as first:
            await receive(first)
            async with open_speak(url) as second:
                await receive_until_closed(second)
                refused = second.close_code, second.close_reason
            await first.send(speak("Still here."))
            await first.send(FLUSH)
            audio = (await receive_until(first, "Flushed")).audio()
        return *refused, len(audio)

    with model_server(env={"MODELS": "speak", "SPEAK_MAX_SESSIONS": "1"}) as server:
        code, reason, first_audio = asyncio.run(run(speak_url(server)))

    assert code == 1013
    assert reason == "/v1/speak is at its model's session limit (1)"
    assert first_audio > 0
