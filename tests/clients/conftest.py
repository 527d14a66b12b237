"""The container (speech to text) behind the local endpoint, shared by every real-client test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.stack import LocalStack, local_stack


@pytest.fixture(scope="session")
def listen_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("certs"), models="transcribe") as stack:
        yield stack
