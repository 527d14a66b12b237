"""The local endpoint's certificate directory: private to its owner, the key never readable by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bidistream.endpoint.tls import generate_certificates


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_open_cert_dir_is_made_private_and_the_key_is_owner_only(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir(mode=0o755)
    os.chmod(cert_dir, 0o755)

    files = generate_certificates(cert_dir)

    assert mode(cert_dir) == 0o700
    assert mode(files.key_file) == 0o600
    assert mode(files.ca_file) == 0o644


def test_a_shared_sticky_dir_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)

    files = generate_certificates(shared)

    assert mode(shared) == 0o1777
    assert mode(files.key_file) == 0o600


def test_a_temporary_key_left_by_a_crash_does_not_block_a_new_one(tmp_path: Path) -> None:
    first = generate_certificates(tmp_path)
    leftover = first.key_file.with_suffix(first.key_file.suffix + ".tmp")
    leftover.write_bytes(b"half a key")
    os.chmod(leftover, 0o644)

    second = generate_certificates(tmp_path)

    assert not leftover.exists()
    assert mode(second.key_file) == 0o600
    assert second.key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
