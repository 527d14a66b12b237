"""The smoke-test trigger: after the endpoint, again on image/model/config change, may invoke only it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from stacks.endpoint_stack import CONTAINER_DIR
from tests.unit.conftest import (
    PACKAGE_ARN,
    actions_of,
    as_list,
    build_stack,
    fresh_template_of,
    only_resource,
    role_statements,
    template_of,
)


@pytest.fixture(scope="module")
def default() -> Template:
    return template_of()


def smoke_function(template: Template) -> dict[str, Any]:
    found = {
        logical_id: resource
        for logical_id, resource in template.find_resources(
            "AWS::Lambda::Function", {"Properties": {"Runtime": Match.string_like_regexp("^python")}}
        ).items()
        if logical_id.startswith("SmokeTestFunction")
    }
    assert len(found) == 1
    return dict(next(iter(found.values()))["Properties"])


def smoke_log_group(template: Template) -> str:
    (logical_id,) = [
        name for name in template.find_resources("AWS::Logs::LogGroup") if name.startswith("SmokeTest")
    ]
    return logical_id


def trigger_version(template: Template) -> str:
    """The Lambda version the trigger invokes: a new one means the trigger runs again."""
    _, trigger = only_resource(template, "Custom::Trigger")
    return str(trigger["Properties"]["HandlerArn"]["Ref"])


def test_trigger_runs_after_the_endpoint_and_reruns_on_handler_change(default: Template) -> None:
    endpoint_id, _ = only_resource(default, "AWS::SageMaker::Endpoint")
    _, trigger = only_resource(default, "Custom::Trigger")
    assert endpoint_id in trigger["DependsOn"]
    assert trigger["Properties"]["ExecuteOnHandlerChange"] is True
    assert trigger["Properties"]["InvocationType"] == "RequestResponse"
    # The invoke timeout is the Lambda's: budget (60 s), control-plane calls (60 s), start-up margin (60 s).
    assert trigger["Properties"]["Timeout"] == "180000"
    assert trigger_version(default).startswith("SmokeTestFunctionCurrentVersion")


def test_function_runs_the_shared_smoke_check_on_the_newest_python(default: Template) -> None:
    function = smoke_function(default)
    assert function["Runtime"] == "python3.14"
    assert function["Handler"] == "handler.lambda_handler"
    assert function["Architectures"] == ["x86_64"]
    assert (function["Timeout"], function["MemorySize"]) == (180, 512)
    assert function["Code"]["S3Key"].endswith(".zip")


def test_function_environment_selects_endpoint_mode_and_budget(default: Template) -> None:
    variables = smoke_function(default)["Environment"]["Variables"]
    assert variables["ENDPOINT_NAME"] == "bidistream"
    assert variables["SMOKE_MODE"] == "echo"
    assert variables["SMOKE_BUDGET_SECONDS"] == "60"
    assert len(variables["DEPLOYMENT_FINGERPRINT"]) == 64
    assert "INVOCATION_PATH" not in variables and "QUERY_STRING" not in variables
    assert "AWS_REGION" not in variables  # reserved: Lambda sets it


def test_function_names_the_endpoint_config_it_checks_so_a_rollback_skips(default: Template) -> None:
    # A rollback re-runs the previous version; it compares this with the config the endpoint serves.
    config_id, _ = only_resource(default, "AWS::SageMaker::EndpointConfig")
    variables = smoke_function(default)["Environment"]["Variables"]
    assert variables["EXPECTED_ENDPOINT_CONFIG"] == {"Fn::GetAtt": [config_id, "EndpointConfigName"]}


def test_model_package_smoke_test_transcribes_on_v1_listen_with_nova_3() -> None:
    variables = smoke_function(template_of({"model_package_arn": PACKAGE_ARN}))["Environment"]["Variables"]
    assert variables["SMOKE_MODE"] == "transcribe"
    assert variables["INVOCATION_PATH"] == "v1/listen"
    assert variables["QUERY_STRING"] == "model=nova-3&encoding=linear16&sample_rate=16000"


def test_speak_smoke_test_speaks_on_v1_speak_with_an_aura_voice() -> None:
    variables = smoke_function(template_of({"smoke_mode": "speak"}))["Environment"]["Variables"]
    assert (variables["SMOKE_MODE"], variables["INVOCATION_PATH"]) == ("speak", "v1/speak")
    assert variables["QUERY_STRING"] == "model=aura-2-thalia-en&encoding=linear16&sample_rate=24000"


def test_budget_sets_the_lambda_and_trigger_timeout() -> None:
    template = template_of({"smoke_budget_seconds": "300"})
    assert smoke_function(template)["Timeout"] == 420
    _, trigger = only_resource(template, "Custom::Trigger")
    assert trigger["Properties"]["Timeout"] == "420000"


def test_lambda_timeout_covers_the_whole_budget_and_the_control_plane_calls() -> None:
    # The check retries within its budget, then may still describe the endpoint and the stack; the
    # Lambda must outlive all of it so the report is always logged.
    from bidistream import smoke
    from stacks.smoke_test import infrastructure

    assert infrastructure.CONTROL_PLANE_SECONDS == smoke.CONTROL_PLANE_SECONDS
    for budget in (5, 60, 600):
        timeout = infrastructure.lambda_timeout_seconds(budget)
        assert timeout >= budget + smoke.CONTROL_PLANE_SECONDS + 30, budget


def test_function_knows_this_stack_and_may_describe_only_it(default: Template) -> None:
    variables = smoke_function(default)["Environment"]["Variables"]
    assert variables["STACK_ARN"] == {"Ref": "AWS::StackId"}
    role_id = next(
        logical_id
        for logical_id in default.find_resources("AWS::IAM::Role")
        if logical_id.startswith("SmokeTestRole")
    )
    (statement,) = [
        s
        for s in role_statements(default, role_id)
        if "cloudformation:DescribeStacks" in as_list(s["Action"])
    ]
    assert statement["Resource"] == {"Ref": "AWS::StackId"}


def smoke_role_excess(template: Template) -> list[str]:
    """What the smoke role may do beyond streaming to this endpoint and writing its own logs."""
    endpoint_id, _ = only_resource(template, "AWS::SageMaker::Endpoint")
    log_group_id = smoke_log_group(template)
    role_id = next(
        logical_id
        for logical_id in template.find_resources("AWS::IAM::Role")
        if logical_id.startswith("SmokeTestRole")
    )
    allowed = {
        "sagemaker:InvokeEndpoint": {"Ref": endpoint_id},  # Ref of an endpoint is its ARN
        "sagemaker:InvokeEndpointWithBidirectionalStream": {"Ref": endpoint_id},
        "sagemaker:DescribeEndpoint": {"Ref": endpoint_id},
        "cloudformation:DescribeStacks": {"Ref": "AWS::StackId"},  # this stack only
        "logs:CreateLogStream": {"Fn::GetAtt": [log_group_id, "Arn"]},
        "logs:PutLogEvents": {"Fn::GetAtt": [log_group_id, "Arn"]},
    }
    excess = []
    for statement in role_statements(template, role_id):
        for action in as_list(statement["Action"]):
            if statement["Effect"] == "Allow" and allowed.get(action) != statement["Resource"]:
                excess.append(f"{action} on {statement['Resource']}")
    return excess


def test_role_may_invoke_only_this_endpoint_and_write_only_its_own_logs(default: Template) -> None:
    assert smoke_role_excess(default) == []
    role_id = next(
        logical_id
        for logical_id in default.find_resources("AWS::IAM::Role")
        if logical_id.startswith("SmokeTestRole")
    )
    assert actions_of(role_statements(default, role_id)) == {
        "sagemaker:InvokeEndpoint",
        "sagemaker:InvokeEndpointWithBidirectionalStream",
        "sagemaker:DescribeEndpoint",
        "cloudformation:DescribeStacks",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_excess_check_catches_an_invoke_grant_on_every_endpoint() -> None:
    stack = build_stack()
    assert stack.smoke_test is not None
    stack.smoke_test.role.add_to_principal_policy(
        iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=["*"])
    )
    assert smoke_role_excess(Template.from_stack(stack)) == ["sagemaker:InvokeEndpoint on *"]


def test_role_is_for_lambda_with_no_managed_policy(default: Template) -> None:
    role_id = next(
        logical_id
        for logical_id in default.find_resources("AWS::IAM::Role")
        if logical_id.startswith("SmokeTestRole")
    )
    role = default.to_json()["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    assert "ManagedPolicyArns" not in role


def test_own_log_group_with_retention_survives_a_rollback(default: Template) -> None:
    log_group_id = smoke_log_group(default)
    log_group = default.to_json()["Resources"][log_group_id]
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert log_group["DeletionPolicy"] == "Retain"
    assert smoke_function(default)["LoggingConfig"] == {"LogGroup": {"Ref": log_group_id}}


def test_rerun_when_the_endpoint_config_changes(default: Template) -> None:
    assert trigger_version(template_of({"instance_count": "2"})) != trigger_version(default)
    assert trigger_version(template_of({"instance_type": "ml.g6.4xlarge"})) != trigger_version(default)


def test_rerun_when_the_model_changes(default: Template) -> None:
    assert trigger_version(template_of({"network_isolation": "true"})) != trigger_version(default)


def test_rerun_when_the_image_changes(default: Template, tmp_path: Path) -> None:
    changed = tmp_path / "container"
    shutil.copytree(CONTAINER_DIR, changed, ignore=shutil.ignore_patterns("__pycache__"))
    same = trigger_version(template_of(container_directory=changed))
    assert same == trigger_version(default)  # a copy of the same build context is the same image
    (changed / "model_server" / "__init__.py").write_text(
        (changed / "model_server" / "__init__.py").read_text() + "\n# changed\n"
    )
    assert trigger_version(template_of(container_directory=changed)) != trigger_version(default)


def test_rerun_when_the_model_package_changes() -> None:
    first = trigger_version(template_of({"model_package_arn": PACKAGE_ARN}))
    second = trigger_version(template_of({"model_package_arn": PACKAGE_ARN.replace("/1", "/2")}))
    assert first != second


def test_no_rerun_when_only_an_alarm_or_scaling_setting_changes(default: Template) -> None:
    changed = template_of({"alarm_5xx_rate_threshold": "0.2", "scaling_max_instances": "3"})
    # The settings did reach the template (so the equal versions below mean something)...
    assert changed.find_resources("AWS::CloudWatch::Alarm", {"Properties": {"Threshold": 0.2}})
    assert changed.find_resources(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"Properties": {"MaxCapacity": 3}}
    )
    # ...and left the smoke test alone: it checks the model and endpoint config, not their monitoring.
    assert trigger_version(changed) == trigger_version(default)


def test_synth_is_deterministic(default: Template) -> None:
    assert fresh_template_of().to_json() == default.to_json()


def test_smoke_test_can_be_turned_off() -> None:
    template = template_of({"smoke_test": "false", "canary": "false"})
    template.resource_count_is("Custom::Trigger", 0)
    template.resource_count_is("AWS::Lambda::Function", 0)
    template.resource_count_is("AWS::SageMaker::Endpoint", 1)


@pytest.mark.parametrize(
    ("context", "command"),
    [
        ({}, "bidistream invoke bidistream --region eu-west-1 --text hello"),
        (
            {"smoke_mode": "transcribe"},
            "bidistream invoke bidistream --region eu-west-1 --path v1/listen "
            "--audio bidistream/data/speech-sample.wav",
        ),
        (
            # Without --output the text would go as a bare UTF8 part, not Speak, and no audio is written.
            {"smoke_mode": "speak"},
            "bidistream invoke bidistream --region eu-west-1 --path v1/speak "
            "--query 'model=aura-2-thalia-en&encoding=linear16&sample_rate=24000' --text hello "
            "--output speech.wav",
        ),
    ],
)
def test_the_invoke_command_output_fits_every_smoke_mode(context: dict[str, str], command: str) -> None:
    template_of(context).has_output("InvokeCommand", {"Value": command})
