"""`make synth` says where the templates are and what the stack holds (stacks/summary.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.summary import main, summarize
from tests.unit.conftest import assembly_of


@pytest.fixture(scope="module")
def assembly_dir() -> Path:
    return assembly_of()


def test_summary_names_the_template_and_counts_resources_by_type(assembly_dir: Path) -> None:
    report = summarize(assembly_dir)
    template = json.loads((assembly_dir / "BidiStream.template.json").read_text())
    assert f"Stack BidiStream: {assembly_dir / 'BidiStream.template.json'}" in report
    assert f"({len(template['Resources'])} resources)" in report
    assert "  1  AWS::SageMaker::Endpoint" in report
    alarms = sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert f"{alarms:3d}  AWS::CloudWatch::Alarm" in report


def test_summary_without_an_assembly_says_to_synthesize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", str(tmp_path)]) == 1
    assert "run `make synth` first" in capsys.readouterr().err


def test_summary_of_an_assembly_without_stacks_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": {"Tree": {"type": "cdk:tree"}}}))
    with pytest.raises(ValueError, match="lists no CloudFormation stack"):
        summarize(tmp_path)
