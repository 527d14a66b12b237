"""Deepgram's Python SDK with its SageMaker transport, through the local endpoint and the real container.

One live session with the options Deepgram's live-streaming examples use (see deepgram_driver.py): every
message must validate strictly against the SDK's own typed models, and KeepAlive, Finalize and
CloseStream must do what Deepgram's do. About 5 s of audio at real time (s04.wav, a second of extra
silence, then part of s02.wav at once), so the test costs about 8 s of wall time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from tests.clients.stack import DEEPGRAM_PYTHON, PUBLIC_RUNTIME, DriverRun, LocalStack, run_driver
from tests.support.processes import REPO_ROOT
from tests.transcribe.wer import word_error_rate, words

SPEECH = REPO_ROOT / "tests" / "data" / "speech"
FIRST, FIRST_TEXT = SPEECH / "s04.wav", "turn on the lights in the kitchen"
SECOND, SECOND_TEXT = SPEECH / "s02.wav", "the weather is nice today"
#: Two words of seven may be wrong (it has come back word-perfect): this pins the client's results to
#: the clip, not the model's accuracy, which varies a little from run to run (see test_telephony).
MAX_WORD_ERROR_RATE = 0.3
#: After CloseStream the container closes with 1000; SageMaker reports every container close as a
#: ModelStreamError, which the transport raises and the SDK emits as its ERROR event.
NORMAL_CLOSE = {"error_type": "ModelStreamError", "error_code": "1000"}


def phases(run: DriverRun) -> dict[str, list[dict[str, Any]]]:
    """The driver's events split at each control message it sent: "start", "KeepAlive", "Finalize", ..."""
    split: dict[str, list[dict[str, Any]]] = {"start": []}
    current = split["start"]
    for line in run.events:
        if line["event"] == "sent":
            current = split.setdefault(line["message"], [])
        else:
            current.append(line)
    return split


def messages(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line["data"] for line in events if line["event"] == "message" and line["data"]["type"] == kind]


def transcript(result: dict[str, Any]) -> str:
    return str(result["channel"]["alternatives"][0]["transcript"])


def test_live_session_with_deepgrams_example_options(listen_stack: LocalStack) -> None:
    run = run_driver(DEEPGRAM_PYTHON, "deepgram_driver.py", listen_stack, str(FIRST), str(SECOND))
    assert run.returncode == 0, run.explain()
    query = parse_qs(run.of("request")[0]["query"])
    for name, value in [("smart_format", "true"), ("utterance_end_ms", "1000"), ("vad_events", "true")]:
        assert query[name] == [value], run.explain()
    assert query["language"] == ["en-US"] and query["interim_results"] == ["true"], run.explain()
    assert [line["replaced"] for line in run.of("redirect")] == [PUBLIC_RUNTIME], run.explain()

    problems = [(line["type"], line["problems"]) for line in run.of("message") if line["problems"]]
    assert problems == [], run.explain()

    by_phase = phases(run)
    streaming = by_phase["start"] + by_phase["KeepAlive"]
    assert not [line for line in streaming if line["event"] == "error"], run.explain()
    assert messages(streaming, "SpeechStarted"), run.explain()
    results = messages(streaming, "Results")
    assert any(not result["is_final"] for result in results), run.explain()
    finals = [result for result in results if result["is_final"] and transcript(result)]
    heard = " ".join(transcript(result) for result in finals)
    assert word_error_rate([(FIRST_TEXT, heard)]) <= MAX_WORD_ERROR_RATE, (heard, run.explain())
    assert heard[0].isupper() and heard.rstrip()[-1] in ".?!", (heard, run.explain())  # smart_format
    # KeepAlive kept the session going: results for the audio sent after it arrived.
    assert messages(by_phase["KeepAlive"], "Results"), run.explain()
    utterance_ends = messages(streaming, "UtteranceEnd")
    last_word = finals[-1]["channel"]["alternatives"][0]["words"][-1]
    assert utterance_ends, run.explain()
    assert abs(utterance_ends[0]["last_word_end"] - last_word["end"]) <= 0.01, run.explain()

    flushed = [result for result in messages(by_phase["Finalize"], "Results") if result["from_finalize"]]
    assert len(flushed) == 1 and flushed[0]["is_final"], run.explain()
    assert set(words(transcript(flushed[0]))) & set(words(SECOND_TEXT)), run.explain()

    closing = by_phase["CloseStream"]
    assert [line["data"]["type"] for line in closing if line["event"] == "message"] == ["Metadata"], (
        run.explain()
    )
    errors = [{key: line[key] for key in NORMAL_CLOSE} for line in closing if line["event"] == "error"]
    assert errors in ([], [NORMAL_CLOSE]), run.explain()
    assert closing[-1]["event"] == "closed", run.explain()
