"""cfn-lint over the synthesized templates: no findings beyond the ignored rules listed here with reasons."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import pytest

from tests.unit.conftest import KMS_KEY_ARN, PACKAGE_ARN, build_stack, template_of

if TYPE_CHECKING:
    from cfnlint.config import ConfigMixIn
    from cfnlint.rules import Rules

# Every cfn-lint rule this project does not enforce, and why. Nothing else may be reported.
IGNORED_RULES: dict[str, str] = {
    "W3005": "CDK writes DependsOn on a Lambda's role next to the GetAtt of its ARN, and the model depends "
    "on its role on purpose so the role's separate policy exists before CreateModel checks the image pull.",
}
# Ignored on one resource only, by cfn-lint metadata the stack writes next to it.
RESOURCE_IGNORED_RULES: dict[str, str] = {
    "W3037": "the smoke test's and the canary's policies: cfn-lint 1.58 does not know the action "
    "sagemaker:InvokeEndpointWithBidirectionalStream; it is granted with InvokeEndpoint because which "
    "one IAM checks for streams is not documented (contract notes, open question 6).",
}
VARIANTS: dict[str, dict[str, Any]] = {
    "byoc-gpu": {},
    "package-vpc": {
        "model_package_arn": PACKAGE_ARN,
        "vpc_subnet_ids": "subnet-0123abcd",
        "vpc_security_group_ids": "sg-0123abcd",
        "inference_ami_version": "al2023-ami-sagemaker-inference-gpu-4-1",
    },
    "byoc-kms-cpu-volume": {
        "instance_type": "ml.c5.xlarge",
        "kms_key_arn": KMS_KEY_ARN,
        "volume_size_gb": "50",
    },
    # Operations variants: scaling off with a rolling update; blue/green canary with GPU-metric scaling,
    # email subscribers and every opt-in alarm.
    "rolling-no-scaling": {
        "scaling_enabled": "false",
        "instance_count": "4",
        "deployment_strategy": "rolling",
        "deployment_step_size": "25",
        "deployment_rollback_batch_size": "50",
    },
    "canary-gpu-scaling-all-alarms": {
        "instance_count": "2",
        # Scaling keeps the scaled count through updates: a canary needs at least 2 at every size.
        "scaling_min_instances": "2",
        "deployment_traffic_shifting": "CANARY",
        "deployment_step_size": "50",
        "scaling_metric": "gpu_utilization",
        "alarm_email_addresses": "oncall@example.com",
        "alarm_first_chunk_latency_threshold_ms": "500",
        "alarm_no_traffic_minutes": "60",
        "smoke_test": "false",
    },
}


# cfn-lint's exit code bits per finding severity (cfnlint.runner.cli), as `cfn-lint` would exit.
EXIT_BITS: dict[str, int] = {"informational": 8, "warning": 4, "error": 2}


@dataclass(frozen=True)
class LintResult:
    """What `cfn-lint --format json --ignore-checks ...` reports: each finding and the exit code."""

    findings: list[tuple[str, str, str]]  # (file, rule ID, message)
    returncode: int


def lint(*templates: Path) -> LintResult:
    """cfn-lint over ``templates`` in this process, as `cfn-lint --ignore-checks ... <templates>` would.

    The CLI's path through its API (``cfnlint.api.lint_by_config``: the config, its validation, then each
    file against the rules), with the rules loaded once per process as the CLI loads them once per run.
    """
    # Imported here: cfn-lint takes most of a second to import, and every worker imports this file.
    from cfnlint.runner.template import run_template_by_file_paths

    config = _config(templates)
    config.validate()  # as lint_by_config: a bad option is an error, not an empty result
    matches = list(run_template_by_file_paths(config, _rules()))
    returncode = 0
    for match in matches:
        returncode |= EXIT_BITS.get(match.rule.severity, 0)
    findings = [(str(match.filename), match.rule.id, str(match.message)) for match in matches]
    return LintResult(findings, returncode)


def _config(templates: tuple[Path, ...]) -> ConfigMixIn:
    from cfnlint.api import ManualArgs
    from cfnlint.config import ConfigMixIn

    return ConfigMixIn(
        **ManualArgs(templates=[str(template) for template in templates], ignore_checks=list(IGNORED_RULES))
    )


@functools.cache
def _rules() -> Rules:
    """cfn-lint's rules as its ``Runner`` loads them for this config (most of a second: ~300 modules)."""
    from cfnlint.runner import Runner

    return Runner(_config(())).rules


def synthesized_template(stack: cdk.Stack) -> Path:
    app = stack.node.root
    assert isinstance(app, cdk.App)
    return Path(app.synth().directory) / stack.template_file


@pytest.fixture(scope="module")
def variant_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each variant's template, from the session's synthesis of its settings, in a file named after it."""
    directory = tmp_path_factory.mktemp("cfn-lint")
    paths = {name: directory / f"{name}.template.json" for name in VARIANTS}
    for name, context in VARIANTS.items():
        paths[name].write_text(json.dumps(template_of(context).to_json(), indent=1), encoding="utf-8")
    return paths


def test_templates_pass_cfn_lint(variant_templates: dict[str, Path]) -> None:
    # One cfn-lint run for all variants: it starts slowly, and each file is linted on its own anyway.
    result = lint(*variant_templates.values())
    findings = [(filename, rule, message[:200]) for filename, rule, message in result.findings]
    assert findings == [], findings
    assert result.returncode == 0, findings


def test_the_invoke_policy_carries_its_resource_level_ignore(variant_templates: dict[str, Path]) -> None:
    template = json.loads(variant_templates["byoc-gpu"].read_text())
    flagged = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks")
    ]
    assert len(flagged) == 2, flagged
    assert {logical_id.split("RoleDefaultPolicy")[0] for logical_id in flagged} == {"SmokeTest", "Canary"}
    for logical_id in flagged:
        ignored = template["Resources"][logical_id]["Metadata"]["cfn-lint"]["config"]["ignore_checks"]
        assert ignored == list(RESOURCE_IGNORED_RULES)


def test_cfn_lint_catches_a_bad_instance_type() -> None:
    stack = build_stack()
    config = stack.endpoint.endpoint_config
    config.add_property_override("ProductionVariants.0.InstanceType", "ml.g6.3xlarge2")
    result = lint(synthesized_template(stack))
    assert "E3030" in {rule for _, rule, _ in result.findings}
    assert result.returncode != 0
