"""The streaming canary: the smoke check on a schedule, metrics of its outcome, and an alarm on failures
that pages and is one of the endpoint's auto-rollback alarms."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from stacks.smoke_test import canary
from tests.unit.conftest import PACKAGE_ARN, as_list, only_resource, role_statements, template_of
from tests.unit.operations_support import alarm_by_name, alarm_names

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
    # The run must end before the next is due (60 s): a 40 s budget, retries included, plus the 20 s
    # margin, so a run always publishes its outcome and never overlaps the next.
    assert function["Timeout"] == 60
    variables = function["Environment"]["Variables"]
    assert (variables["ENDPOINT_NAME"], variables["SMOKE_MODE"], variables["SMOKE_BUDGET_SECONDS"]) == (
        "bidistream",
        "echo",
        "40",
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


STOPPED_ALARM = "bidistream-streaming-canary-stopped"


def test_a_canary_that_stops_reporting_pages(default: Template) -> None:
    # A run that never starts, is throttled or killed publishes nothing; the failure alarm treats that
    # as not breaching, so this alarm counts runs and treats no runs at all as breaching.
    _, alarm = alarm_by_name(default, STOPPED_ALARM)
    assert alarm["TreatMissingData"] == "breaching"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "LessThanThreshold")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 5)  # 5 silent minutes
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    (runs,) = [query for query in queries.values() if query.get("ReturnData", True)]
    assert runs["Expression"] == "success + failure"
    for query_id, metric_name in (("success", "StreamSuccess"), ("failure", "StreamFailure")):
        stat = queries[query_id]["MetricStat"]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == (
            "BidiStream/Canary",
            metric_name,
            "Sum",
        )
        assert stat["Metric"]["Dimensions"] == [{"Name": "EndpointName", "Value": "bidistream"}]
        assert stat["Period"] == 60
    topic_id, _ = only_resource(default, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic_id}] and alarm["OKActions"] == [{"Ref": topic_id}]


def test_a_stopped_canary_does_not_roll_an_update_back(default: Template) -> None:
    # A canary created or changed by the same update has no data yet: rolling back on that would undo
    # healthy updates. Only failed streams roll back.
    _, endpoint = only_resource(default, "AWS::SageMaker::Endpoint")
    rollback = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert {"AlarmName": STOPPED_ALARM} not in rollback
    assert {"AlarmName": ALARM} in rollback
    _, failures = alarm_by_name(default, ALARM)
    assert failures["TreatMissingData"] == "notBreaching"


def test_a_slower_canary_pages_after_three_silent_runs() -> None:
    _, alarm = alarm_by_name(template_of({"canary_rate_minutes": "5"}), STOPPED_ALARM)
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 3)
    assert {query["MetricStat"]["Period"] for query in alarm["Metrics"] if "MetricStat" in query} == {300}


def run_ends_before_the_next_is_due(template: Template) -> bool:
    """A run's timeout fits the schedule's interval, and a delayed event is dropped after a minute."""
    function = canary_function(template)
    _, rule = only_resource(template, "AWS::Events::Rule")
    amount, unit = rule["Properties"]["ScheduleExpression"].removeprefix("rate(").rstrip(")").split()
    interval = int(amount) * 60 if unit.startswith("minute") else int(amount) * 3600
    _, invoke_config = only_resource(template, "AWS::Lambda::EventInvokeConfig")
    (target,) = rule["Properties"]["Targets"]
    return (
        function["Timeout"] <= interval
        and invoke_config["Properties"]["MaximumEventAgeInSeconds"] == 60
        and invoke_config["Properties"]["MaximumRetryAttempts"] == 0
        and target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}
    )


@pytest.mark.parametrize(
    ("budget", "rate", "canary_budget"), [("60", "1", 40), ("600", "1", 40), ("600", "5", 280), ("5", "1", 5)]
)
def test_canary_runs_never_pile_up(budget: str, rate: str, canary_budget: int) -> None:
    template = template_of({"smoke_budget_seconds": budget, "canary_rate_minutes": rate})
    assert run_ends_before_the_next_is_due(template)
    variables = canary_function(template)["Environment"]["Variables"]
    assert variables["SMOKE_BUDGET_SECONDS"] == str(canary_budget)
    assert canary_function(template)["Timeout"] == canary_budget + canary.RUN_MARGIN_SECONDS


def test_the_pile_up_check_catches_a_run_longer_than_the_interval(default: Template) -> None:
    # The twin: today's 660 s timeout against a 1-minute schedule, in an otherwise fixed template.
    from aws_cdk.assertions import Template as FromJson

    resources = default.to_json()
    function_id = next(name for name in resources["Resources"] if name.startswith("CanaryFunction"))
    resources["Resources"][function_id]["Properties"]["Timeout"] = 660
    assert run_ends_before_the_next_is_due(default)
    assert not run_ends_before_the_next_is_due(FromJson.from_json(resources))


def test_the_alarm_watches_what_the_handler_publishes() -> None:
    from bidistream import smoke  # here, not at the top: it loads the AWS SDK, which no other test needs

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
    template.resource_count_is("AWS::Lambda::EventInvokeConfig", 0)
    assert not {ALARM, STOPPED_ALARM} & alarm_names(template)
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
    from bidistream import smoke

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
