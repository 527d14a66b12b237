"""The image definition: what SageMaker requires of it, and hadolint's verdict.

No Docker daemon runs here, so the image is never built in tests; the server tests run the same entry
point (``python -m model_server serve``) as a process.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import CONTAINER_DIR, REPO_ROOT

DOCKERFILE = CONTAINER_DIR / "Dockerfile"
HADOLINT = REPO_ROOT / ".venv" / "bin" / "hadolint"
BIDI_LABEL = "com.amazonaws.sagemaker.capabilities.bidirectional-streaming=true"


def final_stage_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last build stage, with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            instructions = []
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def sagemaker_problems(text: str) -> list[str]:
    """What keeps this Dockerfile's image from being a bidirectional-streaming SageMaker container."""
    instructions = final_stage_instructions(text)
    labels = " ".join(arguments for keyword, arguments in instructions if keyword == "LABEL")
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    problems = []
    if BIDI_LABEL not in labels.replace('"', ""):
        problems.append(f"no LABEL {BIDI_LABEL}")
    if not users:
        problems.append("runs as root: no USER")
    elif users[-1].split(":")[0] in {"root", "0"}:
        problems.append(f"runs as root: USER {users[-1]}")
    if ("EXPOSE", "8080") not in instructions:
        problems.append("no EXPOSE 8080")
    if not any(keyword == "HEALTHCHECK" and "/ping" in arguments for keyword, arguments in instructions):
        problems.append("no HEALTHCHECK on /ping")
    if ("ENTRYPOINT", '["python", "-m", "model_server"]') not in instructions or ("CMD", '["serve"]') not in (
        instructions
    ):
        problems.append("not started as `python -m model_server serve`")
    return problems


def test_dockerfile_meets_the_sagemaker_contract() -> None:
    assert sagemaker_problems(DOCKERFILE.read_text()) == []


def test_contract_check_catches_a_dockerfile_without_label_or_user() -> None:
    # The twin: the sample's Dockerfile minus the label, running as root, is caught.
    bad = """
FROM python:3.12-slim AS build
USER 10001
FROM python:3.12-slim
EXPOSE 8080
USER root
ENTRYPOINT ["python", "app.py"]
"""
    assert sagemaker_problems(bad) == [
        f"no LABEL {BIDI_LABEL}",
        "runs as root: USER root",
        "no HEALTHCHECK on /ping",
        "not started as `python -m model_server serve`",
    ]
    assert "runs as root: no USER" in sagemaker_problems("FROM python:3.12-slim\nLABEL " + BIDI_LABEL)


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_passes() -> None:
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_an_unpinned_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install aiohttp\nUSER root\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3002"):
        assert rule in result.stdout


@pytest.mark.parametrize("needed", ["Dockerfile", "requirements.txt", "model_server"])
def test_build_context_admits_only_what_the_image_needs(needed: str) -> None:
    rules = [line.strip() for line in (CONTAINER_DIR / ".dockerignore").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule.startswith("#")]
    assert rules[0] == "*"  # everything else (tests, caches, editor files) stays out
    assert f"!{needed}" in rules
    assert "**/__pycache__" in rules
