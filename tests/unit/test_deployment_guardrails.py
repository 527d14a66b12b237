"""Deployment guardrails: the endpoint's DeploymentConfig per strategy, the rollback alarms by name without a
cycle, the DescribeAlarms statement, and settings validation."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.assertions import Template

from stacks.alarms import AlarmSettings, EndpointAlarms
from stacks.deployment_guardrails import DeploymentSettings, build_deployment_guardrails
from tests.unit.operations_support import (
    ACCOUNT,
    ENDPOINT_NAME,
    MULTI_GPU_INSTANCE,
    REGION,
    VARIANT_NAME,
    alarm_names,
    bare_stack,
    guarded_endpoint,
    resources_of,
)

ROLLBACK_NAMES = ("ep-5xx-error-rate", "ep-model-latency")


def _deployment_config(settings: DeploymentSettings, *, instance_count: int = 4) -> dict[str, Any]:
    """The DeploymentConfig as CloudFormation sees it, on an endpoint in a bare stack."""
    stack = bare_stack()
    guardrails = build_deployment_guardrails(
        stack, settings=settings, rollback_alarm_names=ROLLBACK_NAMES, instance_count=instance_count
    )
    sagemaker.CfnEndpoint(
        stack, "Endpoint", endpoint_config_name="config", deployment_config=guardrails.deployment_config
    )
    (endpoint,) = resources_of(Template.from_stack(stack), "AWS::SageMaker::Endpoint").values()
    config: dict[str, Any] = endpoint["Properties"]["DeploymentConfig"]
    return config


ROLLBACK = {"Alarms": [{"AlarmName": name} for name in ROLLBACK_NAMES]}


@pytest.fixture(scope="module")
def wired() -> tuple[Template, EndpointAlarms, cdk.Stack]:
    """Alarms, an endpoint whose deployment config names the rollback alarms, a role that may read them."""
    stack = bare_stack()
    alarms = EndpointAlarms(
        stack,
        "Alarms",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=MULTI_GPU_INSTANCE,
        settings=AlarmSettings(alarm_first_chunk_latency_threshold_ms=400.0),
        deployed_config_name="bidi-config-v2",
    )
    _, guardrails = guarded_endpoint(stack, alarms)
    role = iam.Role(stack, "ExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    role.add_to_policy(guardrails.describe_alarms_statement)
    return Template.from_stack(stack), alarms, stack


def test_endpoint_rolls_back_on_the_5xx_and_latency_alarms(
    wired: tuple[Template, EndpointAlarms, cdk.Stack],
) -> None:
    template, alarms, _ = wired
    (endpoint,) = resources_of(template, "AWS::SageMaker::Endpoint").values()
    rollback = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    names = [alarm["AlarmName"] for alarm in rollback]
    assert names == [
        f"{ENDPOINT_NAME}-new-fleet-5xx-error-rate",
        f"{ENDPOINT_NAME}-new-fleet-model-latency",
        f"{ENDPOINT_NAME}-new-fleet-first-chunk-latency",
    ]
    assert list(alarms.rollback_alarm_names) == names
    assert set(names) <= alarm_names(template), "every rollback alarm exists under exactly that name"


def test_endpoint_names_alarms_by_plain_strings_so_there_is_no_cycle(
    wired: tuple[Template, EndpointAlarms, cdk.Stack],
) -> None:
    template, _, _ = wired
    (endpoint,) = resources_of(template, "AWS::SageMaker::Endpoint").values()
    for alarm in endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]:
        assert isinstance(alarm["AlarmName"], str)
    alarm_ids = set(resources_of(template, "AWS::CloudWatch::Alarm"))
    assert alarm_ids <= set(endpoint["DependsOn"])
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        assert "DependsOn" not in alarm
        assert {"Name": "EndpointName", "Value": ENDPOINT_NAME} in alarm["Properties"]["Dimensions"]


def test_token_wiring_would_be_a_cycle_which_synth_rejects() -> None:
    """The twin: alarms on the endpoint's name attribute plus an endpoint naming the alarms' tokens."""
    stack = bare_stack()
    endpoint = sagemaker.CfnEndpoint(stack, "Endpoint", endpoint_config_name="config")
    alarm = cloudwatch.Alarm(
        stack,
        "Alarm",
        metric=cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions_map={"EndpointName": endpoint.attr_endpoint_name, "VariantName": VARIANT_NAME},
        ),
        threshold=0.05,
        evaluation_periods=1,
    )
    endpoint.deployment_config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
        auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name)]
        )
    )
    with pytest.raises(RuntimeError, match=r"(?i)cycl"):
        Template.from_stack(stack)


def test_builder_refuses_alarm_name_tokens() -> None:
    stack = bare_stack()
    with pytest.raises(ValueError, match="rollback_alarm_names: a token was given"):
        build_deployment_guardrails(
            stack,
            settings=DeploymentSettings(),
            rollback_alarm_names=[cdk.Fn.ref("SomeAlarm")],
            instance_count=2,
        )


def test_execution_role_may_describe_exactly_the_rollback_alarms(
    wired: tuple[Template, EndpointAlarms, cdk.Stack],
) -> None:
    template, alarms, _ = wired
    (policy,) = resources_of(template, "AWS::IAM::Policy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "cloudwatch:DescribeAlarms"
    assert statement["Resource"] == [
        {
            "Fn::Join": [
                "",
                ["arn:", {"Ref": "AWS::Partition"}, f":cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"],
            ]
        }
        for name in alarms.rollback_alarm_names
    ]


def test_default_is_blue_green_all_at_once_keeping_the_old_fleet_for_open_streams() -> None:
    assert _deployment_config(DeploymentSettings()) == {
        "AutoRollbackConfiguration": ROLLBACK,
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600},
            "TerminationWaitInSeconds": 1800,
            # one baking period + termination wait + an hour for provisioning
            "MaximumExecutionTimeoutInSeconds": 600 + 1800 + 3600,
        },
    }


def test_canary_shifts_a_first_slice_then_the_rest() -> None:
    config = _deployment_config(
        DeploymentSettings(
            deployment_traffic_shifting="CANARY",
            deployment_step_size=25,
            deployment_wait_interval_seconds=300,
            deployment_termination_wait_seconds=900,
        )
    )
    assert config["BlueGreenUpdatePolicy"] == {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            "WaitIntervalInSeconds": 300,
        },
        "TerminationWaitInSeconds": 900,
        "MaximumExecutionTimeoutInSeconds": 2 * 300 + 900 + 3600,
    }
    assert "RollingUpdatePolicy" not in config


def test_linear_steps_count_in_the_default_timeout() -> None:
    config = _deployment_config(
        DeploymentSettings(
            deployment_traffic_shifting="LINEAR",
            deployment_step_size=1,
            deployment_step_unit="INSTANCE_COUNT",
        ),
        instance_count=4,
    )
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "LINEAR"
    assert routing["LinearStepSize"] == {"Type": "INSTANCE_COUNT", "Value": 1}
    assert config["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == 4 * 600 + 1800 + 3600


def test_default_timeout_covers_the_largest_scaled_fleet() -> None:
    linear = DeploymentSettings(
        deployment_traffic_shifting="LINEAR", deployment_step_size=1, deployment_step_unit="INSTANCE_COUNT"
    )
    stack = bare_stack()
    guardrails = build_deployment_guardrails(
        stack,
        settings=linear,
        rollback_alarm_names=ROLLBACK_NAMES,
        instance_count=4,
        scaling_bounds=(2, 8),
    )
    policy = stack.resolve(guardrails.deployment_config.blue_green_update_policy)
    # 8 linear steps of one instance after a scale-out to 8, not the 4 of the initial fleet.
    assert policy["maximumExecutionTimeoutInSeconds"] == 8 * 600 + 1800 + 3600
    # A fleet that cannot take the step at its largest size is refused (1 of 11 is under LINEAR's 10%).
    with pytest.raises(
        ValueError, match=r"at 11 instance\(s\): deployment_step_size=1 instances is 9.09091%"
    ):
        build_deployment_guardrails(
            bare_stack(),
            settings=linear,
            rollback_alarm_names=ROLLBACK_NAMES,
            instance_count=4,
            scaling_bounds=(2, 11),
        )


def test_rolling_update_replaces_batches_in_place() -> None:
    config = _deployment_config(
        DeploymentSettings(
            deployment_strategy="rolling",
            deployment_step_size=50,
            deployment_rollback_batch_size=100,
            deployment_maximum_execution_timeout_seconds=7200,
        )
    )
    assert config == {
        "AutoRollbackConfiguration": ROLLBACK,
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            "WaitIntervalInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 7200,
            "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 100},
        },
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"deployment_strategy": "canary"},
            r"deployment_strategy='canary': must be one of blue_green, rolling",
        ),
        (
            {"deployment_traffic_shifting": "GRADUAL"},
            r"deployment_traffic_shifting='GRADUAL': must be one of ALL_AT_ONCE",
        ),
        (
            {"deployment_step_unit": "PERCENT"},
            r"deployment_step_unit='PERCENT': must be one of INSTANCE_COUNT",
        ),
        (
            {
                "deployment_strategy": "rolling",
                "deployment_traffic_shifting": "CANARY",
                "deployment_step_size": 10,
            },
            r"deployment_traffic_shifting='CANARY': only applies to deployment_strategy='blue_green'",
        ),
        (
            {"deployment_step_size": 10},
            r"deployment_step_size=10: only applies to CANARY or LINEAR .*ALL_AT_ONCE",
        ),
        (
            {"deployment_strategy": "rolling"},
            r"deployment_step_size=None: rolling needs a step size .*5-50 percent",
        ),
        ({"deployment_traffic_shifting": "CANARY"}, r"deployment_step_size=None: CANARY needs a step size"),
        (
            {"deployment_traffic_shifting": "CANARY", "deployment_step_size": 60},
            r"deployment_step_size=60: CANARY allows 1-50 percent",
        ),
        (
            {"deployment_traffic_shifting": "LINEAR", "deployment_step_size": 5},
            r"deployment_step_size=5: LINEAR allows 10-50 percent",
        ),
        (
            {"deployment_strategy": "rolling", "deployment_step_size": 4},
            r"deployment_step_size=4: rolling allows 5-50 percent",
        ),
        (
            {
                "deployment_strategy": "rolling",
                "deployment_step_size": 0,
                "deployment_step_unit": "INSTANCE_COUNT",
            },
            r"deployment_step_size=0: must be at least 1 instance",
        ),
        ({"deployment_wait_interval_seconds": 4000}, r"deployment_wait_interval_seconds=4000: .*0 to 3600"),
        ({"deployment_termination_wait_seconds": -1}, r"deployment_termination_wait_seconds=-1: .*0 to 3600"),
        (
            {
                "deployment_strategy": "rolling",
                "deployment_step_size": 20,
                "deployment_termination_wait_seconds": 60,
            },
            r"deployment_termination_wait_seconds=60: only applies to deployment_strategy='blue_green'",
        ),
        (
            {"deployment_maximum_execution_timeout_seconds": 300},
            r"=300: must be whole seconds from 600 to 28800",
        ),
        ({"deployment_maximum_execution_timeout_seconds": 30_000}, r"=30000: must be whole seconds from 600"),
        (
            {"deployment_rollback_batch_size": 50},
            r"deployment_rollback_batch_size=50: only applies to deployment_strategy='rolling'",
        ),
        (
            {
                "deployment_strategy": "rolling",
                "deployment_step_size": 20,
                "deployment_rollback_batch_size": 150,
            },
            r"deployment_rollback_batch_size=150: must be 1-100 percent",
        ),
    ],
)
def test_bad_deployment_settings_are_refused_with_setting_value_and_allowed(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DeploymentSettings(**overrides)


@pytest.mark.parametrize(
    ("settings", "names", "instance_count", "message"),
    [
        (DeploymentSettings(), (), 2, r"rollback_alarm_names: 0 given; SageMaker accepts 1 to 10"),
        (DeploymentSettings(), tuple(f"a{i}" for i in range(11)), 2, r"rollback_alarm_names: 11 given"),
        (DeploymentSettings(), ROLLBACK_NAMES, 0, r"instance_count=0: must be at least 1"),
        (
            DeploymentSettings(deployment_traffic_shifting="CANARY", deployment_step_size=50),
            ROLLBACK_NAMES,
            1,
            r"CANARY updates with instance_count=1: .*impossible",
        ),
        (
            DeploymentSettings(
                deployment_traffic_shifting="CANARY",
                deployment_step_size=3,
                deployment_step_unit="INSTANCE_COUNT",
            ),
            ROLLBACK_NAMES,
            4,
            r"deployment_step_size=3 instances is 75% of instance_count=4; CANARY allows 1-50%",
        ),
        (
            DeploymentSettings(
                deployment_traffic_shifting="LINEAR",
                deployment_step_size=1,
                deployment_step_unit="INSTANCE_COUNT",
            ),
            ROLLBACK_NAMES,
            20,
            r"deployment_step_size=1 instances is 5% of instance_count=20; LINEAR allows 10-50%",
        ),
        (
            DeploymentSettings(
                deployment_strategy="rolling",
                deployment_step_size=1,
                deployment_step_unit="INSTANCE_COUNT",
                deployment_rollback_batch_size=5,
            ),
            ROLLBACK_NAMES,
            4,
            r"deployment_rollback_batch_size=5 instances: more than instance_count=4",
        ),
        (
            DeploymentSettings(
                deployment_traffic_shifting="LINEAR",
                deployment_step_size=10,
                deployment_maximum_execution_timeout_seconds=3600,
            ),
            ROLLBACK_NAMES,
            10,
            r"deployment_maximum_execution_timeout_seconds=3600: must be larger than the waits .* \(7800 s",
        ),
    ],
)
def test_guardrails_that_cannot_work_for_this_endpoint_are_refused(
    settings: DeploymentSettings, names: tuple[str, ...], instance_count: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_deployment_guardrails(
            bare_stack(), settings=settings, rollback_alarm_names=names, instance_count=instance_count
        )


def test_deployment_settings_of_the_wrong_type_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"deployment_step_size=2\.5: must be int or empty, not float"):
        DeploymentSettings(deployment_strategy="rolling", deployment_step_size=2.5)  # type: ignore[arg-type]
