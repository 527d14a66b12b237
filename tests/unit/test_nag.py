"""cdk-nag AwsSolutions: zero unacknowledged findings, and twins proving the check and its scoping bite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from stacks import nag
from stacks.endpoint_stack import EndpointStack
from tests.unit.conftest import KMS_KEY_ARN, PACKAGE_ARN, build_stack, shared_stack

VARIANTS: dict[str, dict[str, Any]] = {
    "byoc-gpu": {},
    "package": {"model_package_arn": PACKAGE_ARN},
    "byoc-vpc-kms-cpu": {
        "instance_type": "ml.c5.xlarge",
        "kms_key_arn": KMS_KEY_ARN,
        "vpc_subnet_ids": "subnet-0123abcd",
        "vpc_security_group_ids": "sg-0123abcd",
        "network_isolation": "true",
    },
    "no-smoke-test": {"smoke_test": "false"},
    "rolling-no-scaling-email": {
        "scaling_enabled": "false",
        "instance_count": "2",
        "deployment_strategy": "rolling",
        "deployment_step_size": "50",
        "alarm_email_addresses": "oncall@example.com",
    },
}


def findings_after_synth(stack: EndpointStack) -> list[tuple[str, str]]:
    """Synthesize with the AwsSolutions pack; return (finding, construct path) pairs (empty = passed)."""
    app = stack.node.root
    assert isinstance(app, cdk.App)
    nag.add_security_checks(app)
    try:
        app.synth()
    except RuntimeError as error:
        assert "ValidationFailed" in str(error)
        report = json.loads((Path(app.outdir) / "validation-report.json").read_text())
        return [
            (violation["ruleName"], construct["constructPath"])
            for plugin in report["pluginReports"]
            for violation in plugin["violations"]
            for construct in violation["violatingConstructs"]
        ]
    return []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_unacknowledged_findings(variant: str) -> None:
    assert findings_after_synth(build_stack(VARIANTS[variant])) == []


def test_over_privileged_role_is_caught() -> None:
    stack = build_stack()
    role = iam.Role(stack, "Careless", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSageMakerFullAccess"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:*"], resources=["*"]))
    findings = findings_after_synth(stack)
    rules = {rule for rule, path in findings if path.startswith("BidiStream/Careless/")}
    assert (
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSageMakerFullAccess]" in rules
    )
    assert {"AwsSolutions-IAM5[Action::s3:*]", "AwsSolutions-IAM5[Resource::*]"} <= rules
    # Only the careless role is reported: the app's own acknowledgments stay where they are.
    assert all(path.startswith("BidiStream/Careless/") for _, path in findings)


def test_acknowledgments_are_scoped_to_their_resource() -> None:
    stack = build_stack()
    # The same finding ID the model role acknowledges, on another role: it must still be reported.
    other = iam.Role(stack, "Other", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    other.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
    assert findings_after_synth(stack) == [
        ("AwsSolutions-IAM5[Resource::*]", "BidiStream/Other/DefaultPolicy/Resource")
    ]


def test_every_acknowledgment_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    acknowledged: list[str] = []
    monkeypatch.setattr(nag, "acknowledge", lambda scope, finding, reason: acknowledged.append(finding))
    findings = {rule for rule, _ in findings_after_synth(build_stack(VARIANTS["byoc-vpc-kms-cpu"]))}
    assert sorted(findings) == sorted(set(acknowledged))


def test_acknowledgment_needs_a_real_reason() -> None:
    stack = shared_stack({"smoke_test": "false"})  # refused before it changes anything
    with pytest.raises(ValueError, match="must explain why"):
        nag.acknowledge(stack.model.role, "AwsSolutions-IAM5[Resource::*]", "needed")
