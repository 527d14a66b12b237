"""The local SageMaker stack a real client talks to, and how a test runs that client.

``local_stack`` starts the model container and ``bidistream endpoint`` (TLS, its own CA) as real
processes on loopback. ``run_driver`` runs a driver script under the client's own virtualenv with only
what a user of that client would set: AWS credentials and region, ``SSL_CERT_FILE`` for the local CA,
and the two values the driver needs to redirect the client's hard-coded runtime address. Failure
messages carry the request the client made (the driver reports it) and both servers' logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import (
    REPO_ROOT,
    RunningProcess,
    free_port,
    model_server,
    start_process,
    wait_until,
)

CLIENTS = Path(__file__).resolve().parent
DEEPGRAM_PYTHON = REPO_ROOT / ".venv-deepgram" / "bin" / "python"
PIPECAT_PYTHON = REPO_ROOT / ".venv-pipecat" / "bin" / "python"
REGION = "us-east-1"
#: The address both clients hard-code; their drivers report it as what they replaced.
PUBLIC_RUNTIME = f"https://runtime.sagemaker.{REGION}.amazonaws.com:8443"
ENDPOINT_NAME = "client-tests"
ENDPOINT_START_TIMEOUT = 30.0
LOG_TAIL = 4000  # characters of each log a failure message shows


@dataclass(frozen=True)
class LocalStack:
    container: RunningProcess
    endpoint: RunningProcess
    uri: str
    ca_file: Path
    credentials: Mapping[str, str]

    def client_environment(self) -> dict[str, str]:
        """The environment a client process gets: nothing of the test runner's own beyond PATH and HOME."""
        base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
        return {
            **base,
            **self.credentials,
            "SSL_CERT_FILE": str(self.ca_file),
            "BIDISTREAM_RUNTIME_URI": self.uri,
            "BIDISTREAM_ENDPOINT_NAME": ENDPOINT_NAME,
            "PYTHONUNBUFFERED": "1",
        }


@contextlib.contextmanager
def local_stack(tmp_dir: Path, *, models: str) -> Iterator[LocalStack]:
    """The container serving ``models`` (comma-separated, as ``MODELS``) behind the local endpoint."""
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIDCLIENTS" + secrets.token_hex(4).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with model_server(env={"MODELS": models}) as container:
        port = free_port()
        argv = [sys.executable, "-m", "bidistream", "endpoint", "--port", str(port)]
        argv += ["--model-url", container.base_url, "--cert-dir", str(tmp_dir)]
        endpoint = start_process(argv, port=port, env=credentials)
        try:
            wait_for_ready(endpoint)
            uri = f"https://127.0.0.1:{port}"
            yield LocalStack(container, endpoint, uri, tmp_dir / "ca.pem", credentials)
        finally:
            endpoint.stop()


def wait_for_ready(endpoint: RunningProcess) -> None:
    def ready() -> bool:
        if not endpoint.alive():
            raise RuntimeError(f"endpoint exited with {endpoint.process.returncode}:\n{endpoint.output()}")
        return "ready: " in endpoint.output()

    wait_until(ready, timeout=ENDPOINT_START_TIMEOUT, what="the local endpoint's 'ready: ' line")


@dataclass
class DriverRun:
    """What a driver printed: its JSON-line events, its log (stderr) and how it exited."""

    stack: LocalStack
    returncode: int
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.events if line["event"] == event]

    def requests(self) -> list[str]:
        """Each request the client made, as ``path?query``."""
        return [f"{line['path']}?{line['query']}" for line in self.of("request")]

    def explain(self) -> str:
        """The failure message: the exact requests, then what the driver and both servers said."""
        events = "\n".join(json.dumps(line) for line in self.events if line["event"] != "request")
        return (
            f"requests sent: {self.requests()}\nexit code: {self.returncode}\n"
            f"--- driver events ---\n{events[-LOG_TAIL:]}\n"
            f"--- driver log ---\n{self.stderr[-LOG_TAIL:]}\n"
            f"--- endpoint log ---\n{self.stack.endpoint.output()[-LOG_TAIL:]}\n"
            f"--- container log ---\n{self.stack.container.output()[-LOG_TAIL:]}"
        )


def run_driver(python: Path, driver: str, stack: LocalStack, *args: str, timeout: float = 90.0) -> DriverRun:
    """Run ``tests/clients/<driver>`` with the client virtualenv's ``python``; parse its stdout."""
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run `make setup` to create the client virtualenvs")
    completed = subprocess.run(
        [str(python), str(CLIENTS / driver), *args],
        cwd=CLIENTS,
        env=stack.client_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    run = DriverRun(stack, completed.returncode, stderr=completed.stderr)
    for line in completed.stdout.splitlines():
        try:
            run.events.append(json.loads(line))
        except json.JSONDecodeError:
            run.events.append({"event": "stdout", "text": line})
    return run
