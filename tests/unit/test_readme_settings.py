"""The README's settings table is the one the code generates (``python -m stacks.settings``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.settings import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def table_lines(text: str) -> list[str]:
    """The markdown table that starts at the ``| Setting |`` header line."""
    lines = text.splitlines()
    start = next((index for index, line in enumerate(lines) if line.startswith("| Setting |")), None)
    if start is None:
        return []
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line.rstrip())
    return table


def test_table_finder_sees_a_drifted_default() -> None:
    drifted = settings_table().replace("`ml.g6.2xlarge`", "`ml.g5.2xlarge`")
    assert table_lines(f"# Settings\n\n{drifted}\n\nMore text.\n") != settings_table().splitlines()
    assert table_lines(f"# Settings\n\n{settings_table()}\n\nMore text.\n") == settings_table().splitlines()


def test_readme_settings_table_matches_the_code() -> None:
    if not README.exists():
        pytest.skip("README.md is not written yet")
    assert table_lines(README.read_text(encoding="utf-8")) == settings_table().splitlines(), (
        "README settings table differs from the code: paste `.venv/bin/python -m stacks.settings`"
    )
