"""Pipecat's DeepgramSageMakerSTTService, default settings, in a minimal pipeline through the local stack.

The clip is ``tests/data/speech/s02.wav`` ("the weather is nice today", 3.3 s): streamed at real time
in 20 ms frames, then silence until a final transcript arrives, so the test costs about 4 s of wall time.
"""

from __future__ import annotations

from tests.clients.stack import PIPECAT_PYTHON, PUBLIC_RUNTIME, LocalStack, run_driver
from tests.support.processes import REPO_ROOT
from tests.transcribe.wer import word_error_rate

CLIP = REPO_ROOT / "tests" / "data" / "speech" / "s02.wav"
REFERENCE = "the weather is nice today"
#: Two of five words may be wrong (it has come back word-perfect): this pins the service's transcripts
#: to the clip, not the model's accuracy, which varies a little from run to run (see test_telephony).
MAX_WORD_ERROR_RATE = 0.4
#: What the service sends with every default (pipecat-ai 1.14.0, a 16 kHz pipeline).
DEFAULT_QUERY = (
    "detect_entities=false&diarize=false&dictation=false&interim_results=true&numerals=false"
    "&punctuate=true&smart_format=false&model=nova-3&language=en&encoding=linear16&channels=1"
    "&multichannel=false&sample_rate=16000"
)


def test_default_settings_transcribe_a_live_stream_without_error_frames(listen_stack: LocalStack) -> None:
    run = run_driver(PIPECAT_PYTHON, "pipecat_stt_driver.py", listen_stack, str(CLIP))
    assert run.returncode == 0, run.explain()
    assert run.requests() == [f"v1/listen?{DEFAULT_QUERY}"], run.explain()
    assert run.of("request")[0]["replaced"] == PUBLIC_RUNTIME, run.explain()
    assert run.of("connected"), run.explain()
    assert run.of("error_frame") == [], run.explain()
    kinds = [line["kind"] for line in run.of("transcription")]
    assert "InterimTranscriptionFrame" in kinds, run.explain()
    finals = [line for line in run.of("transcription") if line["kind"] == "TranscriptionFrame"]
    assert finals, run.explain()
    heard = " ".join(line["text"] for line in finals)
    assert word_error_rate([(REFERENCE, heard)]) <= MAX_WORD_ERROR_RATE, (heard, run.explain())
    assert all(line["result"]["is_final"] for line in finals), run.explain()
    assert [line["errors"] for line in run.of("done")] == [0], run.explain()


def test_a_setting_the_model_cannot_honour_reaches_the_pipeline_as_an_error_frame(
    listen_stack: LocalStack,
) -> None:
    # The twin of the test above: its "no ErrorFrame" check sees a refused session (diarize=true is
    # refused with a reason, never silently ignored).
    run = run_driver(PIPECAT_PYTHON, "pipecat_stt_driver.py", listen_stack, str(CLIP), '{"diarize": true}')
    assert run.returncode == 0, run.explain()
    assert "diarize=true" in run.requests()[0], run.explain()
    errors = run.of("error_frame")
    assert len(errors) == 1 and "diarize" in errors[0]["error"], run.explain()
    assert run.of("transcription") == [], run.explain()
