"""End-to-end fixtures: the container (or the test peer) and the local endpoint as real processes on
loopback, a throw-away credential pair, and the real SDK client (in-process or as the CLI)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    REPO_ROOT,
    RunningProcess,
    free_port,
    model_server,
    start_process,
    wait_until,
)

PEER_SCRIPT = Path(__file__).with_name("peer.py")
REGION = "us-east-1"
ENDPOINT_NAME = "e2e-endpoint"
CLI_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def credentials() -> dict[str, str]:
    """The pair both the endpoint and the client get; no real AWS account behind it."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIDE2E" + secrets.token_hex(6).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": REGION,
    }


@pytest.fixture(autouse=True)
def client_environment(monkeypatch: pytest.MonkeyPatch, credentials: dict[str, str]) -> None:
    """The in-process SDK client finds the credentials the way any client does: in the environment."""
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def wait_for_output(process: RunningProcess, marker: str, timeout: float = 30.0) -> None:
    def ready() -> bool:
        if not process.alive():
            raise RuntimeError(f"process exited with {process.process.returncode}:\n{process.output()}")
        return marker in process.output()

    wait_until(ready, timeout=timeout, what=f"{marker!r} from {process.process.args}")


@pytest.fixture(scope="session")
def peer() -> Iterator[RunningProcess]:
    """The stand-in container (fragments, close codes, rejects, a mute and a silent port), see peer.py."""
    port, mute_port, silent_port = free_port(), free_port(), free_port()
    argv = [sys.executable, str(PEER_SCRIPT), str(port), str(mute_port), str(silent_port)]
    process = start_process(argv, port=port)
    process.extra["mute_port"] = mute_port
    process.extra["silent_port"] = silent_port
    try:
        wait_for_output(process, "ready")
        yield process
    finally:
        process.stop()


EndpointFactory = Callable[..., RunningProcess]


@pytest.fixture(scope="session")
def start_endpoint(
    tmp_path_factory: pytest.TempPathFactory, credentials: dict[str, str]
) -> Iterator[EndpointFactory]:
    """Starts ``bidistream endpoint`` processes in front of a model URL; all stopped at the end."""
    started: list[RunningProcess] = []

    def start(model_url: str, *extra_args: str, env: dict[str, str] | None = None) -> RunningProcess:
        port = free_port()
        cert_dir = tmp_path_factory.mktemp("certs")
        argv = [sys.executable, "-m", "bidistream", "endpoint", "--port", str(port), "--model-url", model_url]
        argv += ["--cert-dir", str(cert_dir), *extra_args]
        process = start_process(argv, port=port, env={**credentials, **(env or {})})
        started.append(process)
        wait_for_output(process, "ready: ")
        process.extra["uri"] = f"https://127.0.0.1:{port}"
        process.extra["ca_file"] = str(cert_dir / "ca.pem")
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


@pytest.fixture(scope="session")
def container() -> Iterator[RunningProcess]:
    """The real model container with every model: echo on the default route, speech on v1/listen."""
    with model_server() as server:
        yield server


@pytest.fixture(scope="session")
def container_endpoint(container: RunningProcess, start_endpoint: EndpointFactory) -> RunningProcess:
    return start_endpoint(container.base_url)


@pytest.fixture(scope="session")
def peer_endpoint(peer: RunningProcess, start_endpoint: EndpointFactory) -> RunningProcess:
    return start_endpoint(peer.base_url)


@pytest.fixture(scope="session")
def down_endpoint(start_endpoint: EndpointFactory) -> RunningProcess:
    """An endpoint whose container is not running: nothing listens at its model URL."""
    return start_endpoint(f"http://127.0.0.1:{free_port()}")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bidistream ARGS`` as a user runs it; only ``env`` (plus PATH/HOME) in its environment."""
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "bidistream", *args],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def endpoint_args(endpoint: RunningProcess) -> list[str]:
    return [
        ENDPOINT_NAME,
        "--endpoint-uri",
        str(endpoint.extra["uri"]),
        "--ca-file",
        str(endpoint.extra["ca_file"]),
    ]
