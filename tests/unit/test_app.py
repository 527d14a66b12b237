"""app.py as the CLI runs it: offline synth with no credentials, cdk-nag on, bad settings refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_app(
    context: dict[str, Any], outdir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python app.py`` with the context the CLI would pass, and no AWS credentials or account."""
    cdk_json_context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context, "aws:cdk:bundling-stacks": [], **context}),
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_app(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for a started ``python app.py`` (killed after 120 s) and return what it printed."""
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# Both runs of this module start together, so the short one costs no wall time beside the full synth.
RUNS: dict[str, dict[str, Any]] = {"default": {}, "bad-instance-count": {"instance_count": "0"}}


@pytest.fixture(scope="module")
def app_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    started = {}
    for name, context in RUNS.items():
        outdir = tmp_path_factory.mktemp(name)
        started[name] = (start_app(context, outdir), outdir)
    return {name: (finish_app(process), outdir) for name, (process, outdir) in started.items()}


def test_app_synthesizes_offline_without_credentials_and_passes_cdk_nag(
    app_runs: dict[str, tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    result, tmp_path = app_runs["default"]
    assert result.returncode == 0, result.stderr
    template = json.loads((tmp_path / "BidiStream.template.json").read_text())
    assert any(resource["Type"] == "AWS::SageMaker::Endpoint" for resource in template["Resources"].values())
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"] == []  # cdk-nag ran (the report exists) and found nothing unacknowledged
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artifacts"]["BidiStream"]["environment"] == "aws://unknown-account/unknown-region"


def test_bad_setting_fails_synth_with_a_message_not_a_traceback(
    app_runs: dict[str, tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    result, tmp_path = app_runs["bad-instance-count"]
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: setting 'instance_count' = '0' is not allowed: expected an integer >= 1"
    )
    assert not (tmp_path / "BidiStream.template.json").exists()
