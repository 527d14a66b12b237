"""``bidistream local`` (what ``make local`` runs): both processes up, samples through the real SDK,
answers printed, and both processes gone afterwards, also after Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import sys

from bidistream.errors import ExitCode
from tests.support.processes import RunningProcess, start_process, wait_until

LOCAL_TIMEOUT = 90.0


def started_ports(output: str) -> list[int]:
    return [int(port) for port in re.findall(r"on 127\.0\.0\.1:(\d+) \.\.\.", output)]


def nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def start_local(env: dict[str, str] | None = None) -> RunningProcess:
    return start_process([sys.executable, "-m", "bidistream", "local"], port=0, env=env)


def run_local(env: dict[str, str]) -> tuple[int, str]:
    local = start_local(env)
    try:
        code = local.wait(timeout=LOCAL_TIMEOUT)
    finally:
        local.stop()
    return code, local.output()


def test_local_streams_echo_and_speech_through_the_sdk_then_stops_both_processes() -> None:
    local = start_local()
    try:
        code = local.wait(timeout=LOCAL_TIMEOUT)
    finally:
        local.stop()
    output = local.output()

    assert code == ExitCode.OK, output
    assert "received UTF8   COMPLETE 'Hello from the bidistream client'" in output
    assert "received BINARY COMPLETE '00 01 02 03" in output
    assert "received UTF8   COMPLETE 'fragments: one message'" in output
    transcript = output.split("== speech to text", 1)[1].splitlines()[1]
    assert transcript.strip() and not transcript.startswith("{"), output
    ports = started_ports(output)
    assert len(ports) == 2
    assert all(nothing_listens(port) for port in ports)


def test_local_cleans_up_both_processes_on_ctrl_c() -> None:
    local = start_local()
    try:
        wait_until(
            lambda: "== speech to text" in local.output(), timeout=LOCAL_TIMEOUT, what="the speech sample"
        )
        local.send_signal(signal.SIGINT)
        code = local.wait(timeout=30)
    finally:
        local.stop()

    assert code == ExitCode.INTERRUPTED, local.output()
    assert "Traceback" not in local.output()
    ports = started_ports(local.output())
    assert len(ports) == 2
    assert all(nothing_listens(port) for port in ports)


def test_local_skips_the_speech_sample_when_the_container_does_not_serve_v1_listen() -> None:
    code, output = run_local({"MODELS": "echo"})  # the container answers 404 for v1/listen

    assert code == ExitCode.OK, output
    assert "received UTF8   COMPLETE 'Hello from the bidistream client'" in output
    assert "serves no speech model on v1/listen: skipped" in output


def test_local_fails_when_v1_listen_refuses_the_stream_for_another_reason() -> None:
    # The echo model mounted on v1/listen takes no query parameters: HTTP 400, a 424 ModelError.
    code, output = run_local(
        {"MODELS": "echo", "EXTRA_ROUTES": "/v1/listen=model_server.models.echo:EchoModel"}
    )

    assert code == ExitCode.MODEL_ERROR, output
    assert "skipped" not in output
    assert "400" in output
