"""The destructive-change gate on real ``cdk diff`` output from the pinned CLI (fixtures/diffs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.workflow.scripts import SCRIPTS, load_script

gate = load_script("endpoint_gate")
DIFFS = Path(__file__).resolve().parent / "fixtures" / "diffs"


def diff_text(name: str) -> str:
    return (DIFFS / f"{name}.txt").read_text(encoding="utf-8")


def verdict_for(name: str, labels: frozenset[str] = frozenset()) -> Any:
    return gate.judge(diff_text(name), labels)


# app_*: the real app (app.py) with a setting changed; fixture_*: endpoint_app.py with a code edit.
PASSING = [
    "app_instance_type_change",  # a new EndpointConfig replaces the old one: the normal update path
    "app_model_package_switch",  # a new Model and EndpointConfig
    "app_smoke_test_off",  # other resources destroyed or orphaned
    "fixture_image_change",
    "fixture_endpoint_config_renamed",
    "fixture_model_renamed",
    "fixture_retain_policy_added",
]
BLOCKING = {
    "app_endpoint_name_change": ["AWS::SageMaker::Endpoint"],
    "app_endpoint_name_change_colored": ["AWS::SageMaker::Endpoint"],
    "fixture_endpoint_removed": ["AWS::SageMaker::Endpoint"],
    "fixture_endpoint_renamed": ["AWS::SageMaker::Endpoint"],
    "fixture_endpoint_orphaned": ["AWS::SageMaker::Endpoint"],
    "fixture_serving_removed": [
        "AWS::SageMaker::Endpoint",
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
    ],
}


@pytest.mark.parametrize("name", PASSING)
def test_normal_updates_pass(name: str) -> None:
    verdict = verdict_for(name)
    assert verdict.findings == ()
    assert not verdict.blocked
    assert verdict.stacks_with_differences == 1


@pytest.mark.parametrize(("name", "blocked_types"), BLOCKING.items())
def test_endpoint_removal_or_replacement_is_blocked(name: str, blocked_types: list[str]) -> None:
    verdict = verdict_for(name)
    assert verdict.blocked
    assert sorted(f.resource_type for f in verdict.findings) == sorted(blocked_types)


@pytest.mark.parametrize("name", BLOCKING)
def test_the_label_allows_a_blocked_change_but_keeps_the_findings(name: str) -> None:
    verdict = verdict_for(name, frozenset({"documentation", gate.DEFAULT_OVERRIDE_LABEL}))
    assert verdict.overridden
    assert not verdict.blocked
    assert verdict.findings


def test_no_differences_pass() -> None:
    verdict = verdict_for("app_no_change")
    assert (verdict.findings, verdict.stacks_with_differences, verdict.blocked) == ((), 0, False)


def test_the_real_endpoint_config_replacement_is_seen_and_allowed() -> None:
    changes, _count = gate.parse_diff(diff_text("app_instance_type_change"))
    replaced = [
        (c.resource_type, c.impact) for c in changes if c.resource_type.startswith("AWS::SageMaker::")
    ]
    assert replaced == [("AWS::SageMaker::EndpointConfig", "replace")]


def test_colours_do_not_hide_the_replacement() -> None:
    colored = diff_text("app_endpoint_name_change_colored")
    assert "\x1b[" in colored
    assert (
        verdict_for("app_endpoint_name_change_colored").findings
        == verdict_for("app_endpoint_name_change").findings
    )


def test_another_label_does_not_allow_it() -> None:
    assert verdict_for("fixture_endpoint_removed", frozenset({"allow-endpoint"})).blocked


def test_a_renamed_endpoint_is_reported_as_recreated() -> None:
    (finding,) = verdict_for("fixture_endpoint_renamed").findings
    assert finding.logical_id == "Endpoint"
    assert "new one created under another logical ID" in finding.reason


def test_an_orphaned_endpoint_is_reported_as_orphaned() -> None:
    (finding,) = verdict_for("fixture_endpoint_orphaned").findings
    assert "orphaned" in finding.reason


def test_parser_reads_type_logical_id_and_impact() -> None:
    changes, count = gate.parse_diff(diff_text("fixture_model_renamed"))
    assert count == 1
    assert [(c.kind, c.resource_type, c.logical_id, c.impact) for c in changes] == [
        ("remove", "AWS::SageMaker::Model", "Model", "destroy"),
        ("add", "AWS::SageMaker::Model", "EchoModel", ""),
        ("update", "AWS::SageMaker::EndpointConfig", "EndpointConfig", "replace"),
    ]
    assert {c.stack for c in changes} == {"EndpointFixture"}


# The CLI's documented forms that no offline fixture produces: "may be replaced" comes from change
# sets or conditional-replacement properties, a construct path precedes the logical ID when the
# template has path metadata, and a move suffix follows a refactoring.
MAY_BE_REPLACED = """Stack BidiStream
Resources
[~] AWS::SageMaker::Endpoint Serving/Endpoint Endpoint1A2B3C4D may be replaced
 └─ [~] EndpointName (may cause replacement)
     ├─ [-] old
     └─ [+] new


✨  Number of stacks with differences: 1
"""


def test_may_be_replaced_endpoint_is_blocked() -> None:
    verdict = gate.judge(MAY_BE_REPLACED, frozenset())
    (finding,) = verdict.findings
    assert verdict.blocked
    assert finding.logical_id == "Endpoint1A2B3C4D"
    assert "may be replaced" in finding.reason


def test_construct_path_and_move_suffix_are_not_part_of_the_logical_id() -> None:
    text = (
        "Stack BidiStream\nResources\n"
        "[-] AWS::SageMaker::Model Serving/Echo Model Model5E6F destroy"
        " (OR move to Other.Model5E6F via refactoring)\n"
        "\n✨  Number of stacks with differences: 1\n"
    )
    (model,), _count = gate.parse_diff(text)
    assert (model.construct_path, model.logical_id, model.impact) == (
        "Serving/Echo Model",
        "Model5E6F",
        "destroy",
    )


def test_an_endpoint_update_in_place_passes() -> None:
    text = (
        "Stack BidiStream\nResources\n[~] AWS::SageMaker::Endpoint Endpoint Endpoint\n"
        " └─ [~] EndpointConfigName\n\n✨  Number of stacks with differences: 1\n"
    )
    assert gate.judge(text, frozenset()).findings == ()


def test_truncated_output_fails_closed() -> None:
    whole = diff_text("fixture_endpoint_removed")
    cut = whole[: whole.index("Number of stacks")]
    with pytest.raises(gate.UnreadableDiffError):
        gate.judge(cut, frozenset())


def test_an_error_message_is_not_mistaken_for_no_changes() -> None:
    with pytest.raises(gate.UnreadableDiffError):
        gate.judge("Unable to resolve AWS account to use.\n", frozenset())


def test_labels_come_from_the_pull_request_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"labels": [{"name": "allow-endpoint-replacement"}, {"name": "x"}]}}),
        encoding="utf-8",
    )
    assert gate.labels_from_event(event) == frozenset({"allow-endpoint-replacement", "x"})


def run_gate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "endpoint_gate.py"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_cli_exit_codes_and_report(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    blocked = run_gate(DIFFS / "fixture_endpoint_removed.txt", "--markdown", report, "--marker", "m:x")
    assert blocked.returncode == gate.EXIT_BLOCKED, blocked.stdout + blocked.stderr
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!-- m:x -->\n")
    assert "Blocked" in text and "allow-endpoint-replacement" in text
    assert "[-] AWS::SageMaker::Endpoint Endpoint Endpoint destroy" in text

    allowed = run_gate(DIFFS / "fixture_endpoint_removed.txt", "--label", "allow-endpoint-replacement")
    assert allowed.returncode == gate.EXIT_OK, allowed.stdout + allowed.stderr

    passing = run_gate(DIFFS / "fixture_model_renamed.txt")
    assert passing.returncode == gate.EXIT_OK, passing.stdout + passing.stderr

    broken = tmp_path / "broken.txt"
    broken.write_text("Stack BidiStream\n", encoding="utf-8")
    assert run_gate(broken, "--markdown", report).returncode == gate.EXIT_UNREADABLE
    assert "could not be read" in report.read_text(encoding="utf-8")


def test_cli_reads_the_label_from_github_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"labels": [{"name": "allow-endpoint-replacement"}]}}))
    result = run_gate(DIFFS / "fixture_endpoint_removed.txt", "--event", event)
    assert result.returncode == gate.EXIT_OK, result.stdout + result.stderr
    assert "Allowed by the label" in result.stdout


def test_report_fence_survives_backticks_in_the_diff() -> None:
    text = diff_text("fixture_model_renamed").replace("EchoModel", "Echo````Model")
    verdict = gate.judge(diff_text("fixture_model_renamed"), frozenset())
    report = gate.render_markdown(verdict, text, title="t", marker="m")
    assert "`````text" in report
