"""Deepgram's own Python SDK (``speak.v1.connect`` and its send methods, in .venv-deepgram) against
v1/speak: every message it receives matches the SDK's typed speak models field for field."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.speak.conftest import speak_url
from tests.support.processes import REPO_ROOT, RunningProcess

DEEPGRAM_PYTHON = REPO_ROOT / ".venv-deepgram" / "bin" / "python"
DRIVER = REPO_ROOT / "tests" / "speak" / "deepgram_speak_driver.py"


def run_driver(server: RunningProcess) -> list[dict[str, Any]]:
    if not DEEPGRAM_PYTHON.exists():
        raise FileNotFoundError(f"{DEEPGRAM_PYTHON} is missing: run `make setup` to create it")
    base = speak_url(server).removesuffix("/v1/speak")
    completed = subprocess.run(
        [str(DEEPGRAM_PYTHON), str(DRIVER), base], capture_output=True, text=True, timeout=90, check=False
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return [json.loads(line) for line in completed.stdout.splitlines()]


def test_the_sdk_speaks_flushes_clears_and_closes_with_messages_of_its_own_models(
    speak_server: RunningProcess,
) -> None:
    events = run_driver(speak_server)

    assert [event.get("problems") for event in events if "problems" in event] == [[]] * len(
        [event for event in events if "problems" in event]
    ), events
    kinds = [event["type"] for event in events]
    assert kinds[:4] == ["Metadata", "audio", "Flushed", "Cleared"], kinds
    assert kinds.count("Flushed") == 1 + 19  # the 21st flush of the minute is over the limit
    assert kinds.count("Warning") == 1
    assert events[-2]["type"] == "audio" and events[-2]["bytes"] > 0  # Close spoke "Goodbye."
    assert events[-1] == {"type": "closed", "code": 1000}


def test_the_strict_check_reports_a_message_off_the_sdk_model() -> None:
    """The twin: the driver's check catches a missing field and an extra one."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from deepgram_speak_driver import problems; "
        "print(problems({'type': 'Flushed', 'seq': 1}))"
    )
    completed = subprocess.run(
        [str(DEEPGRAM_PYTHON), "-c", script, str(DRIVER.parent)], capture_output=True, text=True, check=False
    )

    assert "sequence_id: Field required" in completed.stdout, completed.stderr
    assert "extra field 'seq'" in completed.stdout
