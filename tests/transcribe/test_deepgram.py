"""v1/listen as Deepgram's clients use it, through the real server: every message checked strictly
against deepgram-sdk's own typed models (run in .venv-deepgram), telephony and browser audio, and
each channel of a multichannel stream transcribed on its own."""

from __future__ import annotations

import asyncio
import io
import json
import warnings
import wave
from typing import Any

import numpy as np
import pytest
import soxr

from tests.support.processes import RunningProcess
from tests.transcribe.conftest import (
    SPEECH,
    Received,
    listen_url,
    next_message,
    open_listen,
    read_pcm,
    receive_until_closed,
    sdk_validation_errors,
    transcribe,
    transcript,
)
from tests.transcribe.test_params import PIPECAT_DEFAULT

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 encoder (Python 3.12); the server decodes with its own tables

#: What a Deepgram live-streaming example sends (deepgram-sdk's README options and more).
DEEPGRAM_EXAMPLE = (
    "model=nova-3&language=en-US&encoding=linear16&sample_rate=16000&channels=1&interim_results=true"
    "&punctuate=true&smart_format=true&utterance_end_ms=1000&vad_events=true&tag=one&tag=two"
    "&extra=team:voice&filler_words=false&profanity_filter=true&mip_opt_out=true&no_delay=true"
)


def resampled(pcm: bytes, rate: int) -> np.ndarray:
    """The clip at ``rate``, the same every run (libsoxr dithers int16 output at random, not float)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    converted = np.rint(soxr.resample(samples, 16000, rate))
    return np.clip(converted, -32768, 32767).astype(np.int16)


def test_every_message_of_a_full_featured_session_parses_strictly_into_the_sdk_models(
    listen_server: RunningProcess,
) -> None:
    clip = read_pcm(SPEECH / "s06.wav") + bytes(
        32000
    )  # "the meeting starts at ten o'clock", 1 s more silence

    async def scenario() -> tuple[list[dict[str, Any]], Received]:
        async with open_listen(listen_url(listen_server, DEEPGRAM_EXAMPLE)) as ws:
            answers = []
            await ws.send(
                json.dumps({"type": "Configure", "features": {"numerals": True, "smart_format": True}})
            )
            answers.append(await next_message(ws))
            await ws.send(json.dumps({"type": "Configure", "keyterms": ["pocketsphinx"]}))
            answers.append(await next_message(ws))
            await ws.send(json.dumps({"type": "Configure", "features": {"diarize": True}}))
            answers.append(await next_message(ws))
            await ws.send(json.dumps({"type": "Configure", "keyterms": []}))
            answers.append(await next_message(ws))
            await ws.send(json.dumps({"type": "KeepAlive"}))
            received = Received()
            reader = asyncio.create_task(receive_until_closed(ws, received))
            for offset in range(0, len(clip), 640):  # 20 ms frames, as voice agents send
                await ws.send(clip[offset : offset + 640])
            await ws.send(json.dumps({"type": "Finalize"}))
            await ws.send(json.dumps({"type": "CloseStream"}))
            return answers, await reader

    answers, received = asyncio.run(scenario())
    kinds = [answer["type"] for answer in answers]
    assert kinds == ["ConfigureSuccess", "ConfigureFailure", "ConfigureFailure", "ConfigureSuccess"]
    assert "keyterms" not in answers[0]
    assert answers[1]["code"] == "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
    assert answers[2]["code"] == "CONFIGURE_INTERNAL_ERROR" and "diarize" in answers[2]["description"]
    assert answers[3]["keyterms"] == []
    kinds = [message["type"] for message in received.messages]
    assert {"SpeechStarted", "Results", "UtteranceEnd", "Metadata"} <= set(kinds)
    assert kinds.index("SpeechStarted") < kinds.index("Results") < kinds.index("UtteranceEnd")
    assert any(not result["is_final"] for result in received.results())
    assert "10" in received.final_text() and received.final_text().endswith(".")
    (utterance_end,) = received.of_type("UtteranceEnd")
    last_final_word = received.finals()[0]["channel"]["alternatives"][0]["words"][-1]
    assert utterance_end["last_word_end"] >= last_final_word["end"]
    metadata = received.messages[-1]
    assert metadata["type"] == "Metadata" and metadata["tags"] == ["one", "two"]
    assert metadata["extra"] == {"team": "voice"}
    assert received.finals()[0]["metadata"]["extra"] == {"team": "voice"}
    assert sdk_validation_errors(answers + received.messages) == []


def test_the_sdk_model_check_catches_an_unknown_field_and_a_wrong_type() -> None:
    good = {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 0.5}
    errors = sdk_validation_errors(
        [good, {**good, "speaker": 1}, {**good, "timestamp": "0.5"}, {"type": "UtteranceEnd", "channel": [0]}]
    )
    assert len(errors) == 3
    assert "speaker" in errors[0] and "timestamp" in errors[1] and "last_word_end" in errors[2]


def test_mulaw_and_alaw_are_decoded_and_the_wrong_one_is_not_words(listen_server: RunningProcess) -> None:
    # pocketsphinx is sensitive to the smallest change in its input: a clip that survives G.711's
    # quantisation word for word is used, so a wrong expansion table cannot pass.
    pcm = read_pcm(SPEECH / "s04.wav")
    mulaw, alaw = audioop.lin2ulaw(pcm, 2), audioop.lin2alaw(pcm, 2)
    as_mulaw = transcribe(listen_url(listen_server, "encoding=mulaw"), mulaw, chunk_bytes=1600)
    as_alaw = transcribe(listen_url(listen_server, "encoding=alaw"), alaw, chunk_bytes=1600)
    wrong = transcribe(listen_url(listen_server, "encoding=mulaw"), alaw, chunk_bytes=1600)
    assert as_mulaw.final_text() == as_alaw.final_text() == "turn on the lights in the kitchen"
    assert wrong.final_text() != "turn on the lights in the kitchen"
    assert as_mulaw.messages[-1]["duration"] == pytest.approx(len(mulaw) / 16000, abs=0.001)


def test_telephone_mulaw_at_8_khz_is_resampled_and_decoded(listen_server: RunningProcess) -> None:
    # 8 kHz audio has no energy above 4 kHz, where the 16 kHz acoustic model expects some: words come
    # back, but far less accurately (the telephony word error rates are measured with their own set).
    mulaw = audioop.lin2ulaw(resampled(read_pcm(SPEECH / "s04.wav"), 8000).tobytes(), 2)
    received = transcribe(
        listen_url(listen_server, "encoding=mulaw&sample_rate=8000"), mulaw, chunk_bytes=800
    )
    assert received.final_text()
    final_words = received.finals()[-1]["channel"]["alternatives"][0]["words"]
    assert final_words[-1]["end"] <= len(mulaw) / 8000
    assert received.messages[-1]["duration"] == pytest.approx(len(mulaw) / 8000, abs=0.001)


def test_stereo_at_48_khz_multichannel_gives_one_transcript_per_channel(
    listen_server: RunningProcess,
) -> None:
    left, right = (
        resampled(read_pcm(SPEECH / "s04.wav"), 48000),
        resampled(read_pcm(SPEECH / "s05.wav"), 48000),
    )
    length = max(len(left), len(right))
    stereo = np.zeros((length, 2), dtype=np.int16)
    stereo[: len(left), 0], stereo[: len(right), 1] = left, right
    query = "sample_rate=48000&channels=2&multichannel=true"
    received = transcribe(listen_url(listen_server, query), stereo.tobytes(), chunk_bytes=3840)
    by_channel = {
        index: " ".join(
            transcript(r) for r in received.finals() if r["channel_index"] == [index, 2] and transcript(r)
        )
        for index in (0, 1)
    }
    assert by_channel == {0: "turn on the lights in the kitchen", 1: "we need to buy some milk and bread"}
    assert received.messages[-1]["channels"] == 2


def test_stereo_mixed_down_is_one_transcript(listen_server: RunningProcess) -> None:
    mono = np.frombuffer(read_pcm(SPEECH / "s04.wav"), dtype="<i2")
    stereo = np.repeat(mono[:, None], 2, axis=1)
    received = transcribe(listen_url(listen_server, "channels=2&multichannel=false"), stereo.tobytes())
    assert received.final_text() == "turn on the lights in the kitchen"
    assert {tuple(result["channel_index"]) for result in received.results()} == {(0, 1)}


def wav_header_for(pcm_bytes: int, *, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes(b"")
    header = bytearray(out.getvalue())
    header[40:44] = pcm_bytes.to_bytes(4, "little")
    return bytes(header)


def test_pipecat_default_query_connects_and_transcribes(listen_server: RunningProcess) -> None:
    received = transcribe(
        listen_url(listen_server, PIPECAT_DEFAULT), read_pcm(SPEECH / "s04.wav"), chunk_bytes=640
    )
    assert received.final_text() == "Turn on the lights in the kitchen."
    assert received.close_code == 1000


def test_a_wav_header_sets_the_rate_the_query_left_out_but_not_after_a_finalize(
    listen_server: RunningProcess,
) -> None:
    pcm = resampled(read_pcm(SPEECH / "s04.wav"), 8000).tobytes()
    adopted = transcribe(listen_url(listen_server, ""), wav_header_for(len(pcm), rate=8000) + pcm)
    assert adopted.final_text()
    assert adopted.messages[-1]["duration"] == pytest.approx(len(pcm) / 16000, abs=0.001)

    async def finalize_first() -> Received:
        async with open_listen(listen_url(listen_server, "")) as ws:
            await ws.send(json.dumps({"type": "Finalize"}))
            await next_message(ws)  # the empty from_finalize result
            await ws.send(wav_header_for(len(pcm), rate=8000))
            return await receive_until_closed(ws, Received())

    refused = asyncio.run(finalize_first())
    (error,) = refused.of_type("Error")
    assert "WAV header must come first" in error["description"]
    assert refused.close_code == 1007


def test_configure_switches_numerals_on_mid_stream(listen_server: RunningProcess) -> None:
    clip = read_pcm(SPEECH / "s06.wav")  # "the meeting starts at ten o'clock"

    async def scenario() -> tuple[Received, dict[str, Any]]:
        async with open_listen(listen_url(listen_server, "numerals=false")) as ws:
            received = Received()
            await ws.send(clip)
            await ws.send(json.dumps({"type": "Finalize"}))
            while not (received.messages and received.messages[-1].get("from_finalize")):
                received.messages.append(await next_message(ws))
            await ws.send(json.dumps({"type": "Configure", "features": {"numerals": True}}))
            answer = await next_message(ws)
            await ws.send(clip)
            await ws.send(json.dumps({"type": "CloseStream"}))
            return await receive_until_closed(ws, received), answer

    received, answer = asyncio.run(scenario())
    assert answer["type"] == "ConfigureSuccess"
    texts = [transcript(final) for final in received.finals() if transcript(final)]
    assert texts == ["the meeting starts at ten o'clock", "the meeting starts at 10 o'clock"]
