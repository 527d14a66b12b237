"""Run the project's programs as real processes on loopback, for tests and benchmarks.

No sleeps as synchronisation: every wait polls with a deadline and fails with what the process said.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINER_DIR = REPO_ROOT / "container"
START_TIMEOUT = 60.0  # seconds; the speech model loads in a few seconds on 2 cores
TEST_DRAIN_GRACE_SECONDS = 1.0
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORT_COUNTER = Path(tempfile.gettempdir()) / "bidistream-test-ports"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds right now and no other test process has been given.

    The test processes run side by side (pytest-xdist workers, several checkouts on one machine) and a
    port is taken only when the started server binds it, so a port the kernel picks for ``bind(0)``
    could go to two servers, or be picked for a client socket in between. These ports come from below
    the kernel's ephemeral range instead (it never picks them), handed out in turn through a counter
    file that every test process locks.
    """
    ports = _assigned_ports()
    with open(PORT_COUNTER, "a+", encoding="ascii") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)  # released when the file closes
        counter.seek(0)
        text = counter.read().strip()
        last = int(text) - ports.start if text.isdigit() else -1
        for step in range(1, len(ports) + 1):
            port = ports.start + (last + step) % len(ports)
            if _unbound(port):
                counter.seek(0)
                counter.truncate()
                counter.write(str(port))
                return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {ports.start}-{ports.stop - 1}")


def _assigned_ports() -> range:
    """The ports ``free_port`` hands out: from 10000 to the ephemeral range's start (30000 at most)."""
    try:
        ephemeral_start = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_start = 49152  # IANA's dynamic range, which macOS and Windows use
    return range(10000, max(11000, min(ephemeral_start, 30000)))


def _unbound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``condition`` until it is true; raise ``TimeoutError`` naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def http_status(url: str, *, method: str = "GET", timeout: float = 2.0) -> int | None:
    """The HTTP status of ``url``, or None if nothing answers."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


@dataclass
class RunningProcess:
    """A child process whose combined output is kept in a file for failure messages."""

    process: subprocess.Popen[bytes]
    log_path: Path
    port: int
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=timeout)


def start_process(
    argv: Sequence[str],
    *,
    port: int,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
) -> RunningProcess:
    """Start ``argv`` with its stdout and stderr going to a temporary log file."""
    log = tempfile.NamedTemporaryFile(prefix="bidistream-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return RunningProcess(process=process, log_path=Path(log.name), port=port)


def start_model_server(
    *, port: int | None = None, env: Mapping[str, str] | None = None, ready: bool = True
) -> RunningProcess:
    """Start the model container's server exactly as the image's ``serve`` does, on loopback.

    With ``ready`` it waits until ``GET /ping`` answers 200 (every model loaded). Sessions still open
    at ``stop()`` get 1001 after a short drain (``TEST_DRAIN_GRACE_SECONDS``) unless ``env`` sets
    ``DRAIN_GRACE_SECONDS``, so a test never waits out the production grace period.
    """
    port = port or free_port()
    server = start_process(
        [sys.executable, "-m", "model_server", "serve"],
        port=port,
        cwd=CONTAINER_DIR,
        env={
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "DRAIN_GRACE_SECONDS": str(TEST_DRAIN_GRACE_SECONDS),
            **(env or {}),
        },
    )
    if ready:
        wait_for_ping(server)
    return server


def wait_for_ping(server: RunningProcess, *, timeout: float = START_TIMEOUT) -> None:
    def ready() -> bool:
        if not server.alive():
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.output()}")
        return http_status(f"{server.base_url}/ping") == 200

    try:
        wait_until(ready, timeout=timeout, what=f"GET {server.base_url}/ping == 200")
    except TimeoutError as error:
        server.stop()
        raise TimeoutError(f"{error}\n--- server output ---\n{server.output()}") from None


@contextlib.contextmanager
def model_server(**kwargs: object) -> Iterator[RunningProcess]:
    """``start_model_server`` as a context manager that always stops the process."""
    server = start_model_server(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
