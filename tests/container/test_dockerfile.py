"""The image definition: what SageMaker requires of it, and hadolint's verdict.

No Docker daemon runs here, so the image is never built in tests; the server tests run the same entry
point (``python -m model_server serve``) as a process.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def build_arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """``ARG NAME=default`` of a stage (what a build without --build-arg uses)."""
    defaults = {}
    for keyword, arguments in instructions:
        if keyword == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def expand(arguments: str, defaults: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda match: defaults.get(match[1], match[0]), arguments)


def sagemaker_problems(text: str) -> list[str]:
    """What keeps this Dockerfile's image from being a bidirectional-streaming SageMaker container."""
    instructions = final_stage_instructions(text)
    labels = " ".join(arguments for keyword, arguments in instructions if keyword == "LABEL")
    defaults = build_arg_defaults(instructions)
    users = [expand(arguments, defaults) for keyword, arguments in instructions if keyword == "USER"]
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


def test_the_user_is_a_build_argument_with_a_non_root_default() -> None:
    # No AWS document says SageMaker serves non-root images (its contract expects root), so root is one
    # build argument away: RUN_AS_USER=0:0, which the CDK setting container_user=root passes.
    instructions = final_stage_instructions(DOCKERFILE.read_text())
    assert ("USER", "${RUN_AS_USER}") in instructions
    assert build_arg_defaults(instructions)["RUN_AS_USER"] == "10001:10001"
    # The twin: the same Dockerfile defaulting to root is flagged.
    as_root = DOCKERFILE.read_text().replace("ARG RUN_AS_USER=10001:10001", "ARG RUN_AS_USER=0:0")
    assert "runs as root: USER 0:0" in sagemaker_problems(as_root)


# pocketsphinx 5.1.1 declares sounddevice (PortAudio bindings, only for its microphone class) as a plain
# requirement; the image installs its pinned list with --no-deps and leaves it out, with its own deps.
LEFT_OUT = {"sounddevice": "pocketsphinx"}
REQUIREMENTS = CONTAINER_DIR / "requirements.txt"


def pinned(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def missing_dependencies(pins: dict[str, str]) -> list[str]:
    """Requirements of pinned packages (as installed in .venv) that the pinned list lacks."""
    missing = []
    for name in sorted(pins):
        for requirement in map(Requirement, importlib.metadata.requires(name) or []):
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in pins and LEFT_OUT.get(dependency) != name:
                missing.append(f"{name} needs {dependency}")
    return missing


def test_image_requirements_are_the_whole_closure_without_sounddevice() -> None:
    pins = pinned(REQUIREMENTS.read_text())
    assert "pocketsphinx" in pins
    assert not {"sounddevice", "cffi", "pycparser"} & set(pins)
    assert missing_dependencies(pins) == []
    # What pip would pull otherwise: pocketsphinx's own metadata asks for sounddevice.
    assert "sounddevice" in (importlib.metadata.requires("pocketsphinx") or [])
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pip_lines = [line for line in text.splitlines() if re.search(r"\bpip (wheel|install)\b", line)]
    assert len(pip_lines) == 2 and all("--no-deps" in line for line in pip_lines), pip_lines


def test_closure_check_catches_a_missing_transitive_package() -> None:
    pins = pinned(REQUIREMENTS.read_text())
    del pins["yarl"]
    assert missing_dependencies(pins) == ["aiohttp needs yarl"]


def test_the_server_and_its_models_import_without_sounddevice() -> None:
    script = textwrap.dedent(
        """
        import importlib, importlib.abc, pkgutil, sys
        BLOCKED = ("sounddevice", "_cffi_backend", "cffi", "pycparser")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is not in the image")
                return None
        sys.meta_path.insert(0, Block())
        import model_server
        for module in pkgutil.walk_packages(model_server.__path__, "model_server."):
            importlib.import_module(module.name)
        import pocketsphinx
        pocketsphinx.Decoder
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=CONTAINER_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
