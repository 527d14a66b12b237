"""``bidistream local`` (what ``make local`` runs) ends with the voice loop: a sentence spoken by
v1/speak, its audio transcribed by v1/listen, both through the local endpoint with the real SDK."""

from __future__ import annotations

import re

from bidistream.errors import ExitCode
from tests.e2e.test_local import run_local

LOOP = "== text to speech and back: 'Please call me back tomorrow morning.' to v1/speak"


def test_local_ends_by_speaking_a_sentence_and_transcribing_it_back() -> None:
    code, output = run_local({})

    assert code == ExitCode.OK, output
    loop = output.split(LOOP, 1)[1].splitlines()
    spoken = re.search(
        r"v1/speak answered (\d+\.\d+) s of linear16 at 16000 Hz; heard by v1/listen:", loop[1]
    )
    assert spoken and 1.5 < float(spoken.group(1)) < 5.0, output
    heard = loop[2].strip()
    assert heard and not heard.startswith("{"), output  # words, then the listen model's Metadata


def test_local_skips_the_voice_loop_when_the_container_does_not_serve_v1_speak() -> None:
    code, output = run_local({"MODELS": "echo,transcribe"})  # the container answers 404 for v1/speak

    assert code == ExitCode.OK, output
    assert "== speech to text" in output
    assert "(the container serves no speak model on v1/speak: skipped)" in output
