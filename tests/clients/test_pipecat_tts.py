"""Pipecat's DeepgramSageMakerTTSService, default settings, in a minimal pipeline through the local
stack against our v1/speak: audio frames at the pipeline's rate for Speak + Flush, and an interruption
(Clear) stops them. About 6 s of wall time (see pipecat_tts_driver.py for the phases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.stack import PIPECAT_PYTHON, PUBLIC_RUNTIME, DriverRun, LocalStack, local_stack, run_driver

#: What the service sends with every default (pipecat-ai 1.14.0, a 24 kHz pipeline).
DEFAULT_QUERY = "model=aura-2-helena-en&encoding=linear16&sample_rate=24000"


@pytest.fixture(scope="module")
def speak_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("certs"), models="speak") as stack:
        yield stack


@pytest.fixture(scope="module")
def run(speak_stack: LocalStack) -> DriverRun:
    return run_driver(PIPECAT_PYTHON, "pipecat_tts_driver.py", speak_stack)


def sent(run: DriverRun, phase: str) -> list[str]:
    return [line["message"]["type"] for line in run.of("sent") if line["phase"] == phase]


def frames(run: DriverRun, phase: str) -> dict[str, object]:
    (line,) = [line for line in run.of("audio_frames") if line["phase"] == phase]
    return line


def test_default_settings_open_v1_speak_with_deepgrams_query(run: DriverRun) -> None:
    assert run.returncode == 0, run.explain()
    assert run.requests() == [f"v1/speak?{DEFAULT_QUERY}"], run.explain()
    assert run.of("request")[0]["replaced"] == PUBLIC_RUNTIME, run.explain()
    assert run.of("connected"), run.explain()
    assert [line["errors"] for line in run.of("done")] == [0], run.explain()


def test_speak_and_flush_give_audio_frames_at_the_pipeline_rate(run: DriverRun) -> None:
    assert sent(run, "speak") == ["Speak", "Flush"], run.explain()
    speak = frames(run, "speak")
    assert speak["rates"] == [24000] and speak["channels"] == [1], run.explain()
    seconds = int(speak["bytes"]) / 2 / 24000  # type: ignore[call-overload]
    assert 1.5 < seconds < 5.0, run.explain()
    received = [line["message"]["type"] for line in run.of("received") if line["phase"] == "speak"]
    assert received == ["Metadata", "Flushed"], run.explain()


def test_audio_of_a_flush_comes_before_its_flushed(run: DriverRun) -> None:
    order = [
        "audio" if line["event"] == "audio_payload" else line["message"]["type"]
        for line in run.events
        if line["event"] in ("audio_payload", "received") and line["phase"] == "speak"
    ]
    assert order[0] == "Metadata" and order[-1] == "Flushed" and set(order[1:-1]) == {"audio"}, order


def test_an_interruption_sends_clear_and_no_audio_arrives_after_cleared(run: DriverRun) -> None:
    assert sent(run, "interrupted") == ["Speak", "Flush", "Clear"], run.explain()
    events = [line for line in run.events if line["event"] in ("audio_payload", "received")]
    cleared = next(
        i
        for i, line in enumerate(events)
        if line["event"] == "received" and line["message"]["type"] == "Cleared"
    )
    assert [line for line in events[cleared + 1 :] if line["event"] == "audio_payload"] == [], run.explain()
    assert frames(run, "after")["count"] == 0, run.explain()  # the pipeline's audio stopped too
    assert sent(run, "end") == ["Close"], run.explain()


def test_the_interrupted_answer_was_cut_short(run: DriverRun) -> None:
    """The twin of the test above: the long answer really was still being spoken when Clear came."""
    interrupted = sum(line["bytes"] for line in run.of("audio_payload") if line["phase"] == "interrupted")
    assert 0 < interrupted / 2 / 24000 < 29 * 3.0, run.explain()  # 29 sentences of about 3.5 s each
