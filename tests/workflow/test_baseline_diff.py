"""The credential-free review: ``baseline_diff.py`` drives the pinned CDK CLI offline, the gate judges.

The assemblies are written by hand (manifest + templates), so the test runs the real CLI on
``cdk diff --app <assembly> --template <baseline>`` without synthesizing an app.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.workflow.assemblies import CDK, endpoint, write_assembly
from tests.workflow.scripts import load_script

baseline_diff = load_script("baseline_diff")
gate = load_script("endpoint_gate")

pytestmark = pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is installed by `make setup`")


@pytest.fixture
def offline_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CDK_DISABLE_CLI_TELEMETRY", "true")
    monkeypatch.setenv("CDK_DISABLE_VERSION_CHECK", "1")
    monkeypatch.setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.mark.usefixtures("offline_cli")
def test_renamed_endpoint_against_the_base_is_blocked_and_new_stacks_show_as_added(tmp_path: Path) -> None:
    topic = {"Alerts": {"Type": "AWS::SNS::Topic"}}
    base = write_assembly(tmp_path / "base", {"Serving": {"Endpoint": endpoint("bidistream")}, "Old": topic})
    head = write_assembly(
        tmp_path / "head", {"Serving": {"Endpoint": endpoint("bidistream-v2")}, "New": topic}
    )
    output = tmp_path / "diff.txt"

    assert (
        baseline_diff.main(
            ["--head", str(head), "--base", str(base), "--cdk", str(CDK), "--output", str(output)]
        )
        == 0
    )

    text = output.read_text(encoding="utf-8")
    assert "[+] AWS::SNS::Topic Alerts" in text  # the stack the base lacks, against an empty template
    assert "stack Old is in the base branch but not in this pull request" in text
    verdict = gate.judge(text, frozenset())
    assert verdict.blocked
    assert [(f.stack, f.logical_id) for f in verdict.findings] == [("Serving", "Endpoint")]
    assert verdict.stacks_with_differences == 2


@pytest.mark.usefixtures("offline_cli")
def test_unchanged_assembly_has_no_differences(tmp_path: Path) -> None:
    stacks = {"Serving": {"Endpoint": endpoint("bidistream")}}
    base = write_assembly(tmp_path / "base", stacks)
    head = write_assembly(tmp_path / "head", stacks)
    output = tmp_path / "diff.txt"

    assert (
        baseline_diff.main(
            ["--head", str(head), "--base", str(base), "--cdk", str(CDK), "--output", str(output)]
        )
        == 0
    )

    verdict = gate.judge(output.read_text(encoding="utf-8"), frozenset())
    assert (verdict.findings, verdict.stacks_with_differences) == ((), 0)


def test_a_failing_cli_fails_the_job(tmp_path: Path) -> None:
    head = write_assembly(tmp_path / "head", {"Serving": {"Endpoint": endpoint("bidistream")}})
    output = tmp_path / "diff.txt"
    failing_cli = Path("/bin/false") if Path("/bin/false").exists() else Path("/usr/bin/false")
    assert os.access(failing_cli, os.X_OK)
    assert baseline_diff.main(["--head", str(head), "--cdk", str(failing_cli), "--output", str(output)]) == 1
    with pytest.raises(gate.UnreadableDiffError):
        gate.judge(output.read_text(encoding="utf-8"), frozenset())


def test_a_missing_assembly_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = baseline_diff.main(
        ["--head", str(tmp_path / "nowhere"), "--cdk", str(CDK), "--output", str(tmp_path / "d.txt")]
    )
    assert status == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.usefixtures("offline_cli")
def test_relative_paths_work_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflow passes paths relative to the workspace (head/cdk.out, head/node_modules/.bin/cdk)."""
    stacks = {"Serving": {"Endpoint": endpoint("bidistream")}}
    write_assembly(tmp_path / "head", stacks)
    write_assembly(tmp_path / "base", stacks)
    monkeypatch.chdir(tmp_path)
    cdk = os.path.relpath(CDK, tmp_path)
    assert baseline_diff.main(["--head", "head", "--base", "base", "--cdk", cdk, "--output", "diff.txt"]) == 0
    assert "There were no differences" in (tmp_path / "diff.txt").read_text(encoding="utf-8")


def test_a_missing_cli_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = write_assembly(tmp_path / "head", {"Serving": {"Endpoint": endpoint("bidistream")}})
    status = baseline_diff.main(
        ["--head", str(head), "--cdk", str(tmp_path / "no-cdk"), "--output", str(tmp_path / "d.txt")]
    )
    assert status == 2
    assert "no-cdk" in capsys.readouterr().err
