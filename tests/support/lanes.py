"""How `make test` shares the tests outside tests/unit among pytest-xdist workers (`-p tests.support.lanes`).

Most of these tests wait (on processes starting, on audio streamed at real time), so more workers than
cores finish them sooner. A few files decode speech on the CPU as fast as their audio can be sent; two
of those at once already keep both cores busy, and a third would leave each a fraction of a core and run
it into its timeouts. So the decoding files run in two lanes, a lane's files one after another on one
worker; every other file goes to whichever worker is free, one file at a time (its module and session
fixtures start once on that worker). The lanes go out first, then the other slow files, slowest first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

TESTS: Final = Path(__file__).resolve().parents[1]

# The files that decode speech on the CPU, in two lanes of about the same length: 145 and 149 s, their
# files' test times summed from one run on the busy machine (`pytest --ignore=tests/unit -n 4
# -p tests.support.lanes --junitxml=...`, load 5-7 from other work).
LANES: Final = {
    "transcribe/test_telephony.py": "speech lane 1",
    "container/test_workers.py": "speech lane 1",
    "transcribe/test_listen.py": "speech lane 2",
    "container/test_workers_server.py": "speech lane 2",
    "transcribe/test_deepgram.py": "speech lane 2",
    "transcribe/test_recognizer.py": "speech lane 2",
}

# The other files that take 15 s or more, slowest first (same measurement).
SLOW_FILES: Final = (
    "e2e/test_smoke.py",
    "e2e/test_cli.py",
    "e2e/test_local.py",
    "e2e/test_speak_local.py",
    "workflow/test_workflow_steps.py",
    "clients/test_pipecat.py",
    "e2e/test_js_sdk.py",
    "transcribe/test_session_limit.py",
    "transcribe/test_idle.py",
    "transcribe/test_model_settings.py",
)


class LaneScheduling(LoadFileScheduling):
    """pytest-xdist's ``loadfile`` with each lane's files as one unit of work."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return LANES.get(path.removeprefix("tests/"), path)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LaneScheduling:
    return LaneScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    config.option.loadscopereorder = False  # units go out in collection order, as sorted below


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lanes' files first, then ``SLOW_FILES`` in that order; every other test keeps its place."""
    order = [*LANES, *SLOW_FILES]
    rank = {TESTS / name: index for index, name in enumerate(order)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))
