"""The workflow's own shell: the diff jobs' `run:` blocks, executed with bash as the runner would.

The baseline job's block runs for real (the pinned CLI on hand-written assemblies, the scripts from
this checkout). The account job's block needs AWS, so the CLI it runs (``node_modules/.bin/cdk``) is
replaced by a stand-in that accepts only ``diff --app pr-assembly`` and prints a real ``cdk diff``
fixture; what is checked there is the block's own logic: report, outputs, status. That the real CLI
reads an assembly directory given to ``--app`` without running any app is checked with the pinned CLI.
The comment job's block runs against a `gh` stand-in serving canned comments: it must edit its own
comment (found by marker and author) and create one only when there is none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflow.assemblies import CDK, endpoint, write_assembly
from tests.workflow.scripts import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "review.yml"
DIFFS = Path(__file__).resolve().parent / "fixtures" / "diffs"


def job(name: str) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"][name]
    return found


def gate_step(job_name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = job(job_name)["steps"]
    (step,) = [step for step in steps if "endpoint_gate.py" in step.get("run", "")]
    return step


def github_env(workspace: Path, labels: list[str]) -> dict[str, str]:
    event = workspace / "event.json"
    event.write_text(json.dumps({"pull_request": {"labels": [{"name": name} for name in labels]}}))
    for name in ("summary.md", "output.txt"):
        (workspace / name).write_text("", encoding="utf-8")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(workspace)),
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(workspace / "summary.md"),
        "GITHUB_OUTPUT": str(workspace / "output.txt"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return env


def run_block(script: str, workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The runner's `shell: bash` is `bash --noprofile --norc -eo pipefail {0}`.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )


@pytest.fixture
def baseline_workspace(tmp_path: Path) -> Path:
    """head/ and base/ as the baseline job checks them out, with both assemblies synthesized."""
    if not CDK.exists():
        pytest.skip("the pinned CDK CLI is installed by `make setup`")
    head = tmp_path / "head"
    (head / "node_modules" / ".bin").mkdir(parents=True)
    (head / "node_modules" / ".bin" / "cdk").symlink_to(CDK)
    shutil.copytree(ROOT / ".github" / "scripts", head / ".github" / "scripts")
    write_assembly(head / "cdk.out", {"Serving": {"Endpoint": endpoint("bidistream-v2")}})
    (tmp_path / "base").mkdir()
    write_assembly(tmp_path / "base" / "cdk.out", {"Serving": {"Endpoint": endpoint("bidistream")}})
    return tmp_path


@pytest.mark.parametrize(("labels", "status"), [([], 1), (["allow-endpoint-replacement"], 0)])
def test_baseline_job_blocks_an_endpoint_replacement_unless_labelled(
    baseline_workspace: Path, labels: list[str], status: int
) -> None:
    step = gate_step("baseline-diff")
    env = {**github_env(baseline_workspace, labels), "BASE_ASSEMBLY": "base/cdk.out"}
    result = run_block(step["run"], baseline_workspace, env)
    assert result.returncode == status, result.stdout + result.stderr
    summary = (baseline_workspace / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("<!-- bidistream-review:baseline-diff -->")
    assert ("Blocked" in summary) is (status == 1)
    assert "[~] AWS::SageMaker::Endpoint Endpoint replace" in summary


def test_baseline_job_without_a_base_app_diffs_against_nothing(baseline_workspace: Path) -> None:
    env = {**github_env(baseline_workspace, []), "BASE_ASSEMBLY": ""}
    result = run_block(gate_step("baseline-diff")["run"], baseline_workspace, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[+] AWS::SageMaker::Endpoint Endpoint" in (baseline_workspace / "summary.md").read_text()


def account_workspace(tmp_path: Path, fixture: str | None) -> tuple[Path, dict[str, str]]:
    """The base checkout with the gate script, the downloaded assembly, and a CLI stand-in that prints
    a recorded diff (or fails like the CLI without credentials)."""
    shutil.copytree(ROOT / ".github" / "scripts", tmp_path / ".github" / "scripts")
    write_assembly(tmp_path / "pr-assembly", {"Serving": {"Endpoint": endpoint("bidistream")}})
    stand_in = tmp_path / "node_modules" / ".bin" / "cdk"
    stand_in.parent.mkdir(parents=True)
    expected = "diff --app pr-assembly --no-color --method=template"
    if fixture is None:
        body = 'echo "Unable to resolve AWS account to use." >&2\nexit 1\n'
    else:
        recorded_diff = DIFFS / f"{fixture}.txt"
        body = (
            f'[[ "$*" == "{expected}" && -f pr-assembly/manifest.json ]] || exit 2\ncat "{recorded_diff}"\n'
        )
    stand_in.write_text(f"#!/usr/bin/env bash\n{body}", encoding="utf-8")
    stand_in.chmod(0o755)
    return tmp_path, github_env(tmp_path, [])


def test_cdk_diff_app_reads_an_assembly_directory_without_running_any_app(tmp_path: Path) -> None:
    # The account job hands the pinned CLI the pull request's assembly; a cdk.json app (the pull
    # request's code, were it checked out) must not run. --template keeps this offline.
    if not CDK.exists():
        pytest.skip("the pinned CDK CLI is installed by `make setup`")
    marker = tmp_path / "app-ran"
    (tmp_path / "cdk.json").write_text(json.dumps({"app": f"touch {marker}"}), encoding="utf-8")
    write_assembly(tmp_path / "pr-assembly", {"Serving": {"Endpoint": endpoint("bidistream-v2")}})
    base = tmp_path / "base.template.json"
    base.write_text(json.dumps({"Resources": {"Endpoint": endpoint("bidistream")}}), encoding="utf-8")
    result = subprocess.run(
        [str(CDK), "diff", "--app", "pr-assembly", "--no-color", "--template", str(base), "Serving"],
        cwd=tmp_path,
        env=github_env(tmp_path, []),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[~] AWS::SageMaker::Endpoint Endpoint replace" in result.stdout + result.stderr
    assert not marker.exists()
    # The twin: an --app that is a command, not a directory, is run (which is what the job avoids).
    subprocess.run(
        [str(CDK), "diff", "--app", f"touch {marker}", "--template", str(base), "Serving"],
        cwd=tmp_path,
        env=github_env(tmp_path, []),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert marker.exists()


def outputs(workspace: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the runner does (name=value and name<<DELIMITER blocks)."""
    lines = (workspace / "output.txt").read_text(encoding="utf-8").splitlines()
    parsed: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            parsed[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            name, value = line.split("=", 1)
            parsed[name] = value
            index += 1
    return parsed


@pytest.mark.parametrize(
    ("fixture", "status"),
    [("app_instance_type_change", "0"), ("app_endpoint_name_change", "1"), (None, "2")],
)
def test_account_job_reports_and_records_the_gate_status(
    tmp_path: Path, fixture: str | None, status: str
) -> None:
    workspace, env = account_workspace(tmp_path, fixture)
    result = run_block(gate_step("account-diff")["run"], workspace, env)
    assert result.returncode == 0, result.stdout + result.stderr  # the next step fails the job
    recorded = outputs(workspace)
    assert recorded["status"] == status
    assert recorded["report"].startswith("<!-- bidistream-review:account-diff -->")
    assert recorded["report"] == (workspace / "report.md").read_text(encoding="utf-8").rstrip("\n")
    if fixture is None:
        assert "could not be read" in recorded["report"]


def comment_workspace(tmp_path: Path, existing_comments: list[dict[str, Any]]) -> tuple[Path, dict[str, str]]:
    """A `gh` stand-in: serves the PR's comments (two pages), logs each write with its body's first line."""
    pages = tmp_path / "pages.json"
    half = len(existing_comments) // 2
    pages.write_text(json.dumps(existing_comments[:half]) + json.dumps(existing_comments[half:]))
    calls = tmp_path / "gh-calls.txt"
    stand_in = tmp_path / "bin" / "gh"
    stand_in.parent.mkdir()
    stand_in.write_text(
        "#!/usr/bin/env bash\n"
        f'if [[ "$*" == *--paginate* ]]; then cat "{pages}"; exit 0; fi\n'
        f'body_file="${{@: -1}}"; echo "$3 $4 $(head -n 1 "${{body_file#body=@}}")" >> "{calls}"\n',
        encoding="utf-8",
    )
    stand_in.chmod(0o755)
    env = github_env(tmp_path, [])
    env |= {
        "PATH": f"{stand_in.parent}{os.pathsep}{env['PATH']}",
        "REPORT": "<!-- bidistream-review:account-diff -->\n### cdk diff against the target account",
        "PR_NUMBER": "7",
        "REPOSITORY": "owner/repo",
    }
    (step,) = job("comment")["steps"]
    env["MARKER"] = step["env"]["MARKER"]
    return tmp_path, env


def comment_calls(workspace: Path) -> list[str]:
    return (workspace / "gh-calls.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is on GitHub's runners, not here")
def test_comment_job_updates_its_own_comment(tmp_path: Path) -> None:
    mine = {
        "id": 42,
        "user": {"login": "github-actions[bot]"},
        "body": "<!-- bidistream-review:account-diff -->\nold",
    }
    others = [
        {"id": 1, "user": {"login": "someone"}, "body": "<!-- bidistream-review:account-diff --> quoted"},
        {"id": 2, "user": {"login": "github-actions[bot]"}, "body": "<!-- another-tool -->"},
    ]
    workspace, env = comment_workspace(tmp_path, [*others, mine])
    (step,) = job("comment")["steps"]
    result = run_block(step["run"], workspace, env)
    assert result.returncode == 0, result.stdout + result.stderr
    (call,) = comment_calls(workspace)
    assert call.startswith(
        "PATCH repos/owner/repo/issues/comments/42 <!-- bidistream-review:account-diff -->"
    )


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is on GitHub's runners, not here")
def test_comment_job_creates_the_comment_the_first_time(tmp_path: Path) -> None:
    workspace, env = comment_workspace(tmp_path, [{"id": 1, "user": {"login": "someone"}, "body": "LGTM"}])
    (step,) = job("comment")["steps"]
    result = run_block(step["run"], workspace, env)
    assert result.returncode == 0, result.stdout + result.stderr
    (call,) = comment_calls(workspace)
    assert call.startswith("POST repos/owner/repo/issues/7/comments <!-- bidistream-review:account-diff -->")
