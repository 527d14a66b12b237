"""free_port: test processes running side by side never get the same port, nor one that is in use."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.processes import REPO_ROOT, free_port

PORTS_EACH = 50
GET_PORTS = f"from tests.support.processes import free_port\nfor _ in range({PORTS_EACH}): print(free_port())"


def test_processes_asking_at_the_same_time_get_different_ports_below_the_ephemeral_range() -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", GET_PORTS], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    ports = [int(line) for child in children for line in child.communicate(timeout=60)[0].split()]

    assert len(ports) == 4 * PORTS_EACH
    assert len(set(ports)) == len(ports)
    ephemeral_start = int(processes.EPHEMERAL_PORTS.read_text().split()[0])
    assert all(10000 <= port < ephemeral_start for port in ports)


def given_after(port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """What free_port gives next when the port before ``port`` was the last one handed out."""
    counter = tmp_path / "ports"
    counter.write_text(str(port - 1))
    monkeypatch.setattr(processes, "PORT_COUNTER", counter)
    return free_port()


def test_a_port_in_use_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = free_port()  # no other test process is given it meanwhile
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", mine))
        taken.listen()

        assert given_after(mine, tmp_path, monkeypatch) > mine


def test_a_free_port_is_given_in_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin: the same port, nothing bound to it, is the one given."""
    mine = free_port()

    assert given_after(mine, tmp_path, monkeypatch) == mine
