"""``bidistream invoke --path v1/speak --output out.wav``: text spoken through the local endpoint with
the real SDK, written as a WAV file a player (and the ``wave`` module) reads back."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

from bidistream.errors import ExitCode
from tests.e2e.conftest import endpoint_args, run_cli
from tests.support.processes import RunningProcess

SENTENCE = "Please call me back tomorrow morning."


def test_invoke_speaks_text_into_a_playable_wav(
    container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out.wav"

    result = run_cli(
        "invoke", *endpoint_args(container_endpoint), "--path", "v1/speak", "--text", SENTENCE,
        "--output", str(out), env=credentials,
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert '"type": "Metadata"' in result.stdout  # text parts still show; audio goes to the file
    assert "bytes binary" not in result.stdout
    with wave.open(str(out), "rb") as clip:
        assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (24000, 1, 2)
        seconds = clip.getnframes() / clip.getframerate()
    assert 1.5 < seconds < 5.0
    assert f"wrote {out}: {seconds:.2f} s of linear16 at 24000 Hz" in result.stderr


def test_invoke_writes_mulaw_as_a_g711_wav(
    container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out.wav"

    result = run_cli(
        "invoke", *endpoint_args(container_endpoint), "--path", "v1/speak", "--query", "encoding=mulaw",
        "--text", SENTENCE, "--output", str(out), env=credentials,
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    data = out.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    format_code, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", data, 20)
    assert (format_code, channels, rate, byte_rate, align, bits) == (7, 1, 8000, 8000, 1, 8)
    (data_size,) = struct.unpack_from("<I", data, 42)
    assert data[38:42] == b"data" and data_size == len(data) - 46 - data_size % 2
    assert 1.5 < data_size / 8000 < 5.0


def test_output_with_audio_input_is_a_usage_error(
    container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    result = run_cli(
        "invoke", *endpoint_args(container_endpoint), "--path", "v1/speak", "--audio", "x.wav",
        "--output", str(tmp_path / "out.wav"), env=credentials,
    )  # fmt: skip

    assert result.returncode == ExitCode.USAGE
    assert "--output speaks text (--text or stdin); it cannot be used with --audio" in result.stderr


def test_output_refuses_an_encoding_it_cannot_write(
    container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    result = run_cli(
        "invoke", *endpoint_args(container_endpoint), "--path", "v1/speak", "--query", "encoding=opus",
        "--text", "hi", "--output", str(tmp_path / "out.wav"), env=credentials,
    )  # fmt: skip

    assert result.returncode == ExitCode.USAGE
    assert "encoding='opus' cannot be written as WAV" in result.stderr
    assert not (tmp_path / "out.wav").exists()
