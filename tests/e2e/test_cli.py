"""``bidistream invoke`` as a user runs it: answers on stdout, and every failure one line on stderr with
its own exit code (never a traceback, never a hang)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bidistream.errors import ExitCode
from tests.e2e.conftest import CLI_TIMEOUT, ENDPOINT_NAME, endpoint_args, run_cli
from tests.support.processes import REPO_ROOT, RunningProcess, free_port


def assert_one_line_failure(
    result: subprocess.CompletedProcess[str], code: ExitCode, *fragments: str
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_text_parts_are_echoed_on_stdout(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    result = run_cli(
        "invoke", *endpoint_args(container_endpoint), "--text", "hello", "--text", "wörld", env=credentials
    )

    assert (result.returncode, result.stdout) == (ExitCode.OK, "hello\nwörld\n"), result.stderr


def test_stdin_lines_are_sent_as_text_parts(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bidistream", "invoke", *endpoint_args(container_endpoint)],
        input="one\ntwo\n",
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **credentials},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )

    assert (result.returncode, result.stdout) == (ExitCode.OK, "one\ntwo\n"), result.stderr


def test_invalid_utf8_on_stdin_ends_at_once_with_a_usage_error(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    # --timeout 30: without the fix the dead reader thread left invoke waiting that long, then exit 9.
    result = subprocess.run(
        [sys.executable, "-m", "bidistream", "invoke", *endpoint_args(container_endpoint), "--timeout", "30"],
        input=b"one\nt\xffo\n",
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **credentials},
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    text = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )

    # Not assert_one_line_failure: under load awscrt's C code may print "Treating Python exception as
    # error 3" for a body chunk that lands after the stream was given up (its own stderr, not ours).
    assert text.returncode == ExitCode.USAGE, text.stderr
    assert "Traceback" not in text.stderr
    assert text.stderr.strip().splitlines()[-1] == "bidistream: stdin is not valid UTF-8 at byte 5"


def test_valid_utf8_on_stdin_with_multibyte_characters_is_sent(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bidistream", "invoke", *endpoint_args(container_endpoint), "--timeout", "30"],
        input="one\nwörld\n".encode(),
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **credentials},
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )

    assert (result.returncode, result.stdout.decode()) == (ExitCode.OK, "one\nwörld\n"), result.stderr


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("close", "done"),  # the container closes with 4001 on "bye"
        # The CLI ends its input after "bye"; the container answers the endpoint's close 1000 with 4001,
        # as when its own close crosses the endpoint's.
        ("cross", "crossed"),
    ],
    ids=["container-closes", "close-crosses-the-end-of-input"],
)
def test_container_close_exits_with_model_stream_error_and_its_code(
    peer_endpoint: RunningProcess, credentials: dict[str, str], path: str, reason: str
) -> None:
    result = run_cli(
        "invoke", *endpoint_args(peer_endpoint), "--path", path, "--query", f"code=4001&reason={reason}",
        "--text", "bye", env=credentials,
    )  # fmt: skip

    assert_one_line_failure(
        result, ExitCode.MODEL_STREAM_ERROR, "ModelStreamError", "close code 4001", reason
    )


def test_container_down_exits_with_model_error(
    down_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:

    result = run_cli("invoke", *endpoint_args(down_endpoint), "--text", "hi", env=credentials)

    assert_one_line_failure(result, ExitCode.MODEL_ERROR, "ModelError (424)", "Failed to establish WebSocket")


def test_refused_upgrade_shows_the_container_status(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    result = run_cli(
        "invoke", *endpoint_args(peer_endpoint), "--path", "reject", "--text", "hi", env=credentials
    )

    assert_one_line_failure(result, ExitCode.MODEL_ERROR, "container answered 400", "unknown model parameter")


def test_wrong_secret_exits_with_access_denied(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    wrong = {**credentials, "AWS_SECRET_ACCESS_KEY": credentials["AWS_SECRET_ACCESS_KEY"] + "x"}

    result = run_cli("invoke", *endpoint_args(container_endpoint), "--text", "hi", env=wrong)

    assert_one_line_failure(result, ExitCode.ACCESS_DENIED, "403 InvalidSignatureException")


def test_unknown_access_key_exits_with_access_denied(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    other = {**credentials, "AWS_ACCESS_KEY_ID": "AKIDSOMEONEELSE"}

    result = run_cli("invoke", *endpoint_args(container_endpoint), "--text", "hi", env=other)

    assert_one_line_failure(result, ExitCode.ACCESS_DENIED, "403 UnrecognizedClientException")


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--path", "/invocations-bidirectional-stream", "ModelInvocationPath"),
        ("--path", "v1//listen", "ModelInvocationPath"),
        ("--query", "model", "ModelQueryString"),
        ("--query", "model=a b", "ModelQueryString"),
    ],
)
def test_invalid_path_or_query_exits_with_input_validation_error(
    container_endpoint: RunningProcess, credentials: dict[str, str], option: str, value: str, named: str
) -> None:
    result = run_cli(
        "invoke", *endpoint_args(container_endpoint), option, value, "--text", "hi", env=credentials
    )

    assert_one_line_failure(result, ExitCode.INPUT_VALIDATION, "InputValidationError", named)


def test_missing_credentials_exit_with_their_own_code(
    container_endpoint: RunningProcess, tmp_path: object
) -> None:
    no_credentials = {"AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path), "AWS_REGION": "us-east-1"}

    result = run_cli("invoke", *endpoint_args(container_endpoint), "--text", "hi", env=no_credentials)

    assert_one_line_failure(result, ExitCode.NO_CREDENTIALS, "no AWS credentials")


def test_nothing_listening_exits_with_cannot_connect(
    credentials: dict[str, str], container_endpoint: RunningProcess
) -> None:
    args = [ENDPOINT_NAME, "--endpoint-uri", f"https://127.0.0.1:{free_port()}"]
    args += ["--ca-file", str(container_endpoint.extra["ca_file"])]

    result = run_cli("invoke", *args, "--text", "hi", env=credentials)

    assert_one_line_failure(result, ExitCode.CANNOT_CONNECT, "cannot connect")


def test_endpoint_that_never_answers_exits_with_timed_out(
    peer: RunningProcess, container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    # The peer's mute port accepts TCP and never speaks: the TLS handshake never completes.
    args = [ENDPOINT_NAME, "--endpoint-uri", f"https://127.0.0.1:{peer.extra['mute_port']}"]
    args += ["--ca-file", str(container_endpoint.extra["ca_file"]), "--timeout", "1"]

    result = run_cli("invoke", *args, "--text", "hi", env=credentials)

    assert_one_line_failure(result, ExitCode.TIMED_OUT, "timed out after 1s")


def test_audio_that_is_not_a_wav_file_is_a_usage_error(
    container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are not samples")

    result = run_cli("invoke", *endpoint_args(container_endpoint), "--audio", str(not_audio), env=credentials)

    assert_one_line_failure(result, ExitCode.USAGE, "not a PCM WAV file")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--ping-interval", "0", "--ping-interval: must be a number of seconds > 0, got 0"),
        ("--ping-interval", "-1", "--ping-interval: must be a number of seconds > 0, got -1"),
        ("--ping-interval", "nan", "--ping-interval: must be a number of seconds > 0, got nan"),
        ("--max-missed-pongs", "0", "--max-missed-pongs: must be at least 1, got 0"),
    ],
)
def test_endpoint_refuses_keepalive_settings_that_cannot_work(
    option: str, value: str, message: str, credentials: dict[str, str], tmp_path: Path
) -> None:
    # Before the check, such an endpoint started and served (busy-looping pings, or failing every
    # stream): a short timeout here catches that as a failure.
    argv = ["endpoint", "--port", str(free_port()), "--cert-dir", str(tmp_path), option, value]
    result = subprocess.run(
        [sys.executable, "-m", "bidistream", *argv],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **credentials},
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_a_failed_send_is_reported_as_itself_not_as_a_receive_timeout(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    too_big = "a" * (16 * 1024 * 1024 + 1) + "\n"  # one event payload may carry at most 16 MiB
    result = subprocess.run(
        [sys.executable, "-m", "bidistream", "invoke", *endpoint_args(container_endpoint), "--timeout", "5"],
        input=too_big,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **credentials},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )

    assert_one_line_failure(result, ExitCode.FAILED, "Payload length of 16777217 exceeded")
