"""The model construct: image asset, least-privilege execution role, and the two model modes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Capture, Match, Template

from stacks.endpoint_stack import CONTAINER_DIR
from tests.unit.conftest import (
    KMS_KEY_ARN,
    PACKAGE_ARN,
    actions_of,
    as_list,
    assembly_of,
    build_stack,
    only_resource,
    role_statements,
    shared_stack,
    template_of,
)

ECR_PULL = {"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"}
LOG_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"}
VPC = {"vpc_subnet_ids": "subnet-0123abcd,subnet-4567ef01", "vpc_security_group_ids": "sg-0123abcd"}


@pytest.fixture(scope="module")
def byoc() -> Template:
    return template_of()


@pytest.fixture(scope="module")
def package() -> Template:
    return template_of({"model_package_arn": PACKAGE_ARN})


@pytest.fixture(scope="module")
def vpc_with_key() -> Template:
    return template_of(
        {**VPC, "network_isolation": "true", "instance_type": "ml.c5.xlarge", "kms_key_arn": KMS_KEY_ARN}
    )


def execution_role_statements(template: Template) -> list[dict[str, Any]]:
    role_id, _ = next(
        (logical_id, role)
        for logical_id, role in template.find_resources("AWS::IAM::Role").items()
        if logical_id.startswith("ModelExecutionRole")
    )
    return role_statements(template, role_id)


def rendered(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def arn_text(value: Any) -> str:
    """An ARN as text: a literal as it is, an ``Fn::Join`` with its tokens rendered as JSON in place."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    return separator.join(part if isinstance(part, str) else rendered(part) for part in parts)


def test_byoc_model_runs_the_asset_image_without_isolation(byoc: Template) -> None:
    image = Capture()
    byoc.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {"Image": {"Fn::Sub": image}, "Mode": "SingleModel"},
            "EnableNetworkIsolation": False,
            "ModelName": Match.absent(),
            "VpcConfig": Match.absent(),
        },
    )
    stack = shared_stack()
    assert stack.model.image is not None
    assert image.as_string().endswith(f":{stack.model.image.asset_hash}")
    assert "container-assets" in image.as_string()


def test_image_asset_is_built_from_container_dir_for_linux_amd64() -> None:
    stack = shared_stack()
    assembly = assembly_of()
    images = json.loads((assembly / f"{stack.artifact_id}.assets.json").read_text())["dockerImages"]
    assert len(images) == 1
    source = next(iter(images.values()))["source"]
    assert source["platform"] == "linux/amd64"
    staged = assembly / source["directory"]
    assert (staged / "Dockerfile").read_text() == (CONTAINER_DIR / "Dockerfile").read_text()


def test_model_waits_for_its_role_policy(byoc: Template) -> None:
    _, model = only_resource(byoc, "AWS::SageMaker::Model")
    policies = byoc.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("^ModelExecutionRole")}]}},
    )
    policy_id = next(iter(policies))
    assert policy_id in model["DependsOn"]


def test_execution_role_is_assumed_by_sagemaker_and_has_no_managed_policies(byoc: Template) -> None:
    byoc.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "sagemaker.amazonaws.com"}})]
            },
            "ManagedPolicyArns": Match.absent(),
        },
    )
    # Ours only: the CDK trigger framework's provider role is not ours to shape (see test_smoke_test).
    for logical_id, role in byoc.find_resources("AWS::IAM::Role").items():
        if logical_id.startswith(("ModelExecutionRole", "SmokeTestRole")):
            assert "ManagedPolicyArns" not in role["Properties"]


# cloudwatch:DescribeAlarms: SageMaker reads the auto-rollback alarms with this role during an update.
BYOC_ACTIONS = (
    ECR_PULL
    | LOG_ACTIONS
    | {
        "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
        "cloudwatch:DescribeAlarms",
    }
)


def test_execution_role_may_do_only_pull_logs_and_metrics(byoc: Template) -> None:
    assert actions_of(execution_role_statements(byoc)) == BYOC_ACTIONS


def test_action_check_catches_an_extra_permission() -> None:
    stack = build_stack({"smoke_test": "false"})
    stack.model.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    assert actions_of(execution_role_statements(Template.from_stack(stack))) - BYOC_ACTIONS == {
        "s3:GetObject"
    }


ASSET_REPOSITORY = "cdk-hnb659fds-container-assets-123456789012-eu-west-1"


def assert_image_pull_limited_to_the_asset_repository(statements: list[dict[str, Any]]) -> None:
    """One pull statement, on the CDK asset repository only, plus the resource-less token statement."""
    pulls = [s for s in statements if set(as_list(s["Action"])) & ECR_PULL]
    assert len(pulls) == 1, f"expected one ECR pull statement, found {pulls}"
    (pull,) = pulls
    assert set(as_list(pull["Action"])) == ECR_PULL
    assert ASSET_REPOSITORY in rendered(pull["Resource"])
    assert "*" not in rendered(pull["Resource"])
    tokens = [s for s in statements if "ecr:GetAuthorizationToken" in as_list(s["Action"])]
    assert len(tokens) == 1, f"expected one GetAuthorizationToken statement, found {tokens}"
    assert as_list(tokens[0]["Action"]) == ["ecr:GetAuthorizationToken"]
    assert tokens[0]["Resource"] == "*"  # the action has no resource-level permissions


def test_image_pull_is_limited_to_the_asset_repository(byoc: Template) -> None:
    assert_image_pull_limited_to_the_asset_repository(execution_role_statements(byoc))


def test_image_pull_check_catches_a_missing_or_wildcard_pull_statement(byoc: Template) -> None:
    statements = execution_role_statements(byoc)
    without_pull = [s for s in statements if not set(as_list(s["Action"])) & ECR_PULL]
    with pytest.raises(AssertionError, match="expected one ECR pull statement"):
        assert_image_pull_limited_to_the_asset_repository(without_pull)
    wildcard = {"Effect": "Allow", "Action": sorted(ECR_PULL), "Resource": "*"}
    with pytest.raises(AssertionError):
        assert_image_pull_limited_to_the_asset_repository([*without_pull, wildcard])


def log_resource_suffixes(template: Template) -> list[str]:
    """What follows the endpoint's log group name in each resource of the EndpointLogs statement."""
    statement = next(s for s in execution_role_statements(template) if s.get("Sid") == "EndpointLogs")
    group = ":log-group:/aws/sagemaker/Endpoints/bidistream"
    suffixes = []
    for resource in statement["Resource"]:
        text = arn_text(resource)
        assert group in text, f"{text} is not this endpoint's log group"
        suffixes.append(text.split(group, 1)[1])
    return sorted(suffixes)


def test_logs_go_only_to_this_endpoints_log_group_in_both_arn_forms(byoc: Template) -> None:
    # The CloudWatch Logs authorization reference uses the log group ARN with and without ":*".
    assert log_resource_suffixes(byoc) == ["", ":*", ":log-stream:*"]


def test_metrics_only_under_the_endpoint_namespace(byoc: Template) -> None:
    statement = next(s for s in execution_role_statements(byoc) if s.get("Sid") == "EndpointMetrics")
    assert statement["Action"] == "cloudwatch:PutMetricData"
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}}


def test_no_vpc_or_kms_permissions_when_those_settings_are_off(byoc: Template) -> None:
    actions = actions_of(execution_role_statements(byoc))
    assert not {action for action in actions if action.startswith(("ec2:", "kms:"))}


def test_model_package_mode_uses_the_package_with_network_isolation(package: Template) -> None:
    package.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {"ModelPackageName": PACKAGE_ARN, "Image": Match.absent()},
            "EnableNetworkIsolation": True,
        },
    )


def test_model_package_mode_builds_no_image_and_grants_no_ecr(package: Template) -> None:
    assert shared_stack({"model_package_arn": PACKAGE_ARN}).model.image is None
    actions = actions_of(execution_role_statements(package))
    assert not {action for action in actions if action.startswith("ecr:")}
    # No cloudwatch:DescribeAlarms: a package's endpoint has no rollback alarms (SageMaker applies no
    # deployment guardrails to Marketplace containers).
    assert actions == LOG_ACTIONS | {"cloudwatch:PutMetricData"}


def test_vpc_config_and_isolation_for_our_container(vpc_with_key: Template) -> None:
    vpc_with_key.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": True,
            "VpcConfig": {
                "Subnets": ["subnet-0123abcd", "subnet-4567ef01"],
                "SecurityGroupIds": ["sg-0123abcd"],
            },
        },
    )


def test_vpc_mode_creates_interfaces_only_in_the_configured_subnets(vpc_with_key: Template) -> None:
    statements = {s.get("Sid"): s for s in execution_role_statements(vpc_with_key)}
    create = statements["VpcCreateInterfaces"]
    assert create["Action"] == "ec2:CreateNetworkInterface"
    resources = rendered(create["Resource"])
    for resource_id in ("subnet/subnet-0123abcd", "subnet/subnet-4567ef01", "security-group/sg-0123abcd"):
        assert resource_id in resources
    assert "subnet/*" not in resources
    assert arn_text(statements["VpcManageInterfaces"]["Resource"]).endswith(":network-interface/*")
    assert statements["VpcDescribe"]["Resource"] == "*"
    assert all(action.startswith("ec2:Describe") for action in statements["VpcDescribe"]["Action"])


def test_kms_key_use_is_granted_on_that_key_only(vpc_with_key: Template) -> None:
    statement = next(s for s in execution_role_statements(vpc_with_key) if s.get("Sid") == "VolumeKey")
    assert statement["Resource"] == KMS_KEY_ARN
    assert set(statement["Action"]) == {
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKey",
    }
