"""The streaming canary: the smoke check on a schedule, metrics of its outcome, and an alarm on failures
that pages and is one of the endpoint's auto-rollback alarms."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from bidistream import smoke
from stacks.smoke_test import canary
from tests.unit.conftest import PACKAGE_ARN, as_list, only_resource, role_statements, template_of
from tests.unit.operations_support import alarm_by_name

ALARM = "bidistream-streaming-canary"


@pytest.fixture(scope="module")
def default() -> Template:
    return template_of()


def canary_function(template: Template) -> dict[str, Any]:
    found = [
        resource["Properties"]
        for logical_id, resource in template.find_resources("AWS::Lambda::Function").items()
        if logical_id.startswith("CanaryFunction")
    ]
    assert len(found) == 1, f"expected one canary function, found {len(found)}"
    return found[0]


def test_canary_runs_the_shared_check_every_minute_by_default(default: Template) -> None:
    function = canary_function(default)
    assert function["Handler"] == "handler.canary_handler"
    assert function["Runtime"] == "python3.14"
    # The budget (60 s, retries included) plus the start-up margin: a run always publishes its outcome.
    assert function["Timeout"] == 120
    variables = function["Environment"]["Variables"]
    assert (variables["ENDPOINT_NAME"], variables["SMOKE_MODE"], variables["SMOKE_BUDGET_SECONDS"]) == (
        "bidistream",
        "echo",
        "60",
    )
    _, rule = only_resource(default, "AWS::Events::Rule")
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"]["Fn::GetAtt"][0].startswith("CanaryFunction")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0


def test_canary_alarm_is_an_auto_rollback_alarm_that_pages(default: Template) -> None:
    _, alarm = alarm_by_name(default, ALARM)
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "BidiStream/Canary",
        "StreamFailure",
        "Sum",
    )
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "bidistream"}]
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 3, 2)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    topic_id, _ = only_resource(default, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic_id}] and alarm["OKActions"] == [{"Ref": topic_id}]
    endpoint_id, endpoint = only_resource(default, "AWS::SageMaker::Endpoint")
    rollback = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert {"AlarmName": ALARM} in rollback
    alarm_id = next(
        logical_id
        for logical_id, resource in default.find_resources("AWS::CloudWatch::Alarm").items()
        if resource["Properties"]["AlarmName"] == ALARM
    )
    assert alarm_id in endpoint["DependsOn"]  # exists before the endpoint names it
    _, rule = only_resource(default, "AWS::Events::Rule")
    assert endpoint_id in rule["DependsOn"]  # the schedule starts once the endpoint exists


def test_the_alarm_watches_what_the_handler_publishes() -> None:
    assert (canary.NAMESPACE, canary.SUCCESS_METRIC, canary.FAILURE_METRIC) == (
        smoke.CANARY_NAMESPACE,
        smoke.CANARY_SUCCESS_METRIC,
        smoke.CANARY_FAILURE_METRIC,
    )


def test_canary_may_only_stream_to_this_endpoint_and_write_its_logs(default: Template) -> None:
    endpoint_id, _ = only_resource(default, "AWS::SageMaker::Endpoint")
    role_id = next(
        logical_id
        for logical_id in default.find_resources("AWS::IAM::Role")
        if logical_id.startswith("CanaryRole")
    )
    granted = {
        (action, str(statement["Resource"]))
        for statement in role_statements(default, role_id)
        for action in as_list(statement["Action"])
    }
    log_group = next(
        logical_id
        for logical_id in default.find_resources("AWS::Logs::LogGroup")
        if logical_id.startswith("Canary")
    )
    assert granted == {
        ("sagemaker:InvokeEndpoint", str({"Ref": endpoint_id})),
        ("sagemaker:InvokeEndpointWithBidirectionalStream", str({"Ref": endpoint_id})),
        ("logs:CreateLogStream", str({"Fn::GetAtt": [log_group, "Arn"]})),
        ("logs:PutLogEvents", str({"Fn::GetAtt": [log_group, "Arn"]})),
    }


def test_rate_setting_sets_the_schedule_and_the_alarm_period() -> None:
    template = template_of({"canary_rate_minutes": "5"})
    _, rule = only_resource(template, "AWS::Events::Rule")
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    _, alarm = alarm_by_name(template, ALARM)
    assert alarm["Period"] == 300


def test_canary_can_be_switched_off_and_leaves_the_rollback_set() -> None:
    template = template_of({"canary": "false"})
    template.resource_count_is("AWS::Events::Rule", 0)
    assert not [
        name for name in template.find_resources("AWS::Lambda::Function") if name.startswith("Canary")
    ]
    _, endpoint = only_resource(template, "AWS::SageMaker::Endpoint")
    rollback = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert {"AlarmName": ALARM} not in rollback and rollback  # the new-fleet alarms remain


def test_a_package_canary_transcribes_and_pages_without_rollback() -> None:
    template = template_of({"model_package_arn": PACKAGE_ARN})
    variables = canary_function(template)["Environment"]["Variables"]
    assert (variables["SMOKE_MODE"], variables["INVOCATION_PATH"]) == ("transcribe", "v1/listen")
    _, endpoint = only_resource(template, "AWS::SageMaker::Endpoint")
    assert "DeploymentConfig" not in endpoint["Properties"]  # no guardrails for Marketplace containers
    _, alarm = alarm_by_name(template, ALARM)
    assert alarm["AlarmActions"]


def test_a_speak_canary_runs_the_speak_check_on_v1_speak() -> None:
    variables = canary_function(template_of({"smoke_mode": "speak"}))["Environment"]["Variables"]
    assert (variables["SMOKE_MODE"], variables["INVOCATION_PATH"], variables["QUERY_STRING"]) == (
        "speak",
        "v1/speak",
        "model=aura-2-thalia-en&encoding=linear16&sample_rate=24000",
    )
    assert "speak" in smoke.MODES  # the bundled check has the mode the function names


def test_operators_facts_in_the_readme_follow_the_defaults() -> None:
    # Blue/green keeps the old fleet while the new one comes up: twice the largest fleet, which with
    # scaling on is scaling_max_instances.
    from pathlib import Path

    from stacks.settings import Settings

    defaults = Settings()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    largest = max(defaults.instance_count, defaults.scaling.scaling_max_instances)
    assert f"`{defaults.instance_type}`**" in readme
    assert f"(2 \N{MULTIPLICATION SIGN} {largest})" in readme
    assert 2 * largest == 8  # "eight" in the README


def test_the_alarm_key_outlives_cdk_destroy_as_the_readme_says() -> None:
    template = template_of()
    key_id, key = only_resource(template, "AWS::KMS::Key")
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain"), key_id


@pytest.mark.parametrize("handler", ["handler.lambda_handler", "handler.canary_handler"])
def test_the_handlers_the_functions_name_exist_in_the_bundle_entry_point(handler: str) -> None:
    import importlib.util

    from stacks.smoke_test import bundle

    module_name, _, attribute = handler.partition(".")
    spec = importlib.util.spec_from_file_location(module_name, bundle.RUNTIME_DIR / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, attribute))
