"""Operations wired into the app's stack: alarms paging an encrypted topic, the dashboard, autoscaling, and
safe updates that roll back on the 5XX/latency alarms, with every threshold context key reaching its alarm."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk.assertions import Template

from stacks.alarms import AlarmSettings
from tests.unit.conftest import (
    REGION,
    build_stack,
    only_resource,
    role_statements,
    shared_stack,
    template_of,
)
from tests.unit.operations_support import alarm_by_name, alarm_names, dashboard_body, flatten_join

ENDPOINT = "bidistream"
ALARM_SUFFIXES_ON_A_GPU = {
    "5xx-error-rate",
    "4xx-error-rate",
    "model-error-rate",
    "model-latency",
    "cpu-utilization",
    "memory-utilization",
    "disk-utilization",
    "gpu-utilization",
    "gpu-memory-utilization",
}
# The auto-rollback alarms: the new fleet's 5XX and latency (EndpointConfigName = the config being
# deployed), and the streaming canary. They do not page twice; their all-fleet twins and the canary do.
NEW_FLEET_ALARMS = [f"{ENDPOINT}-new-fleet-5xx-error-rate", f"{ENDPOINT}-new-fleet-model-latency"]
CANARY_ALARM = f"{ENDPOINT}-streaming-canary"
ROLLBACK_ALARMS = [*NEW_FLEET_ALARMS, CANARY_ALARM]
# Pages when the canary stops reporting; not a rollback alarm (test_canary.py says why).
CANARY_STOPPED_ALARM = f"{ENDPOINT}-streaming-canary-stopped"
# Context key -> (value given as the CLI would, alarm it must reach, threshold expected in the template).
# ml.g6.2xlarge has 8 vCPUs and 1 GPU; latencies are set in ms and alarm in µs.
THRESHOLD_KEYS: dict[str, tuple[str, str, float]] = {
    "alarm_5xx_rate_threshold": ("0.02", "5xx-error-rate", 0.02),
    "alarm_4xx_rate_threshold": ("0.3", "4xx-error-rate", 0.3),
    "alarm_model_error_rate_threshold": ("0.07", "model-error-rate", 0.07),
    "alarm_model_latency_threshold_ms": ("1500", "model-latency", 1_500_000),
    "alarm_first_chunk_latency_threshold_ms": ("800", "first-chunk-latency", 800_000),
    "alarm_cpu_utilization_threshold_percent": ("70", "cpu-utilization", 70 * 8),
    "alarm_memory_utilization_threshold_percent": ("85", "memory-utilization", 85),
    "alarm_gpu_utilization_threshold_percent": ("80", "gpu-utilization", 80),
    "alarm_gpu_memory_utilization_threshold_percent": ("75", "gpu-memory-utilization", 75),
    "alarm_disk_utilization_threshold_percent": ("65", "disk-utilization", 65),
}


@pytest.fixture(scope="module")
def default() -> Template:
    return template_of()


@pytest.fixture(scope="module")
def tuned() -> Template:
    """Every threshold, window and the no-traffic alarm changed through context, as `-c key=value` would."""
    context = {key: value for key, (value, _, _) in THRESHOLD_KEYS.items()}
    context |= {
        "alarm_request_period_seconds": "120",
        "alarm_request_evaluation_periods": "4",
        "alarm_request_datapoints_to_alarm": "2",
        "alarm_resource_period_seconds": "600",
        "alarm_resource_evaluation_periods": "2",
        "alarm_resource_datapoints_to_alarm": "1",
        "alarm_latency_statistic": "Maximum",
        "alarm_no_traffic_minutes": "30",
    }
    return template_of(context)


@pytest.fixture(scope="module")
def rolling_without_scaling() -> Template:
    return template_of(
        {
            "scaling_enabled": "false",
            "instance_count": "4",
            "deployment_strategy": "rolling",
            "deployment_step_size": "25",
        }
    )


def test_every_alarm_and_the_composite_on_a_gpu_instance(default: Template) -> None:
    assert alarm_names(default) == {f"{ENDPOINT}-{suffix}" for suffix in ALARM_SUFFIXES_ON_A_GPU} | set(
        ROLLBACK_ALARMS
    ) | {CANARY_STOPPED_ALARM}
    _, composite = only_resource(default, "AWS::CloudWatch::CompositeAlarm")
    assert composite["Properties"]["AlarmName"] == f"{ENDPOINT}-unhealthy"


def test_no_gpu_alarms_on_a_cpu_instance() -> None:
    names = alarm_names(template_of({"instance_type": "ml.c5.xlarge", "smoke_test": "false"}))
    assert names == {
        f"{ENDPOINT}-{suffix}"
        for suffix in ALARM_SUFFIXES_ON_A_GPU - {"gpu-utilization", "gpu-memory-utilization"}
    } | set(ROLLBACK_ALARMS) | {CANARY_STOPPED_ALARM}


def test_every_alarm_but_the_new_fleet_copies_pages_the_encrypted_topic(default: Template) -> None:
    topic_id, topic = only_resource(default, "AWS::SNS::Topic")
    key_id, _ = only_resource(default, "AWS::KMS::Key")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    alarms = {
        **default.find_resources("AWS::CloudWatch::Alarm"),
        **default.find_resources("AWS::CloudWatch::CompositeAlarm"),
    }
    assert len(alarms) == len(ALARM_SUFFIXES_ON_A_GPU) + len(ROLLBACK_ALARMS) + 2
    paging = 0
    for logical_id, alarm in alarms.items():
        if alarm["Properties"]["AlarmName"] in NEW_FLEET_ALARMS:
            # Their all-fleet twins page already; a rollback during an update would page twice.
            assert "AlarmActions" not in alarm["Properties"], logical_id
            continue
        paging += 1
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], logical_id
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}], logical_id
    assert paging == len(ALARM_SUFFIXES_ON_A_GPU) + 3  # and the canary's two and the composite


def test_rollback_alarms_watch_only_the_fleet_of_the_config_being_deployed(default: Template) -> None:
    config_id, _ = only_resource(default, "AWS::SageMaker::EndpointConfig")
    for name in NEW_FLEET_ALARMS:
        _, alarm = alarm_by_name(default, name)
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions == {
            "EndpointName": ENDPOINT,
            "VariantName": "AllTraffic",
            "EndpointConfigName": {"Fn::GetAtt": [config_id, "EndpointConfigName"]},
        }, name
        # The twin: the paging alarm on the same metric sees every fleet.
        _, twin = alarm_by_name(default, name.replace("new-fleet-", ""))
        assert {d["Name"] for d in twin["Dimensions"]} == {"EndpointName", "VariantName"}
        assert (twin["MetricName"], twin["Threshold"]) == (alarm["MetricName"], alarm["Threshold"])


def test_email_addresses_subscribe_to_the_topic() -> None:
    template = template_of({"alarm_email_addresses": "oncall@example.com", "smoke_test": "false"})
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )


def test_one_dashboard_showing_the_alarms(default: Template) -> None:
    _, dashboard = only_resource(default, "AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == f"{ENDPOINT}-operations-{REGION}"
    assert_dashboard_shows_every_alarm(default)


def assert_dashboard_shows_every_alarm(template: Template) -> None:
    """The dashboard's alarm widget lists every metric and composite alarm of the template, and no other."""
    body = dashboard_body(template)
    widgets = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    assert len(widgets) == 1, f"expected one alarm widget, found {len(widgets)}"
    shown = set(widgets[0]["properties"]["alarms"])
    metric_alarms = set(template.find_resources("AWS::CloudWatch::Alarm"))
    composite_alarms = set(template.find_resources("AWS::CloudWatch::CompositeAlarm"))
    assert metric_alarms, "expected the endpoint's metric alarms"
    assert shown == {f"<GetAtt:{logical_id}.Arn>" for logical_id in metric_alarms | composite_alarms}


def test_dashboard_check_catches_a_metric_alarm_missing_from_the_widget() -> None:
    stack = build_stack({"smoke_test": "false"})
    # An alarm the dashboard was not given: the widget no longer shows every alarm of the template.
    cloudwatch.Alarm(
        stack,
        "UnlistedAlarm",
        metric=cloudwatch.Metric(namespace="Test", metric_name="Unlisted"),
        threshold=1,
        evaluation_periods=1,
    )
    with pytest.raises(AssertionError):
        assert_dashboard_shows_every_alarm(Template.from_stack(stack))


@pytest.mark.parametrize("key", sorted(THRESHOLD_KEYS))
def test_threshold_context_key_reaches_its_alarm(key: str, default: Template, tuned: Template) -> None:
    _, suffix, expected = THRESHOLD_KEYS[key]
    _, alarm = alarm_by_name(tuned, f"{ENDPOINT}-{suffix}")
    assert alarm["Threshold"] == expected
    default_alarms = {
        properties["AlarmName"]: properties["Threshold"]
        for properties in (r["Properties"] for r in default.find_resources("AWS::CloudWatch::Alarm").values())
    }
    # The twin: the default template does not already hold the value, so the match above is the setting's.
    assert default_alarms.get(f"{ENDPOINT}-{suffix}") != expected


def test_every_threshold_setting_is_covered() -> None:
    thresholds = {item.name for item in fields(AlarmSettings) if "_threshold" in item.name}
    assert thresholds == set(THRESHOLD_KEYS)


def test_window_settings_reach_the_request_and_resource_alarms(tuned: Template) -> None:
    _, request = alarm_by_name(tuned, f"{ENDPOINT}-model-latency")
    assert (request["Period"], request["EvaluationPeriods"], request["DatapointsToAlarm"]) == (120, 4, 2)
    assert (request["Statistic"], request.get("ExtendedStatistic")) == ("Maximum", None)
    _, resource = alarm_by_name(tuned, f"{ENDPOINT}-disk-utilization")
    assert (resource["Period"], resource["EvaluationPeriods"], resource["DatapointsToAlarm"]) == (600, 2, 1)
    _, no_traffic = alarm_by_name(tuned, f"{ENDPOINT}-no-traffic")
    assert no_traffic["Period"] == 1800


def test_endpoint_rolls_back_on_the_5xx_and_latency_alarms_blue_green(default: Template) -> None:
    _, endpoint = only_resource(default, "AWS::SageMaker::Endpoint")
    config = endpoint["Properties"]["DeploymentConfig"]
    assert [alarm["AlarmName"] for alarm in config["AutoRollbackConfiguration"]["Alarms"]] == ROLLBACK_ALARMS
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert policy["TerminationWaitInSeconds"] == 1800  # the longest a stream lives
    assert "RollingUpdatePolicy" not in config


def test_rollback_alarms_exist_before_the_endpoint_without_a_cycle(default: Template) -> None:
    _, endpoint = only_resource(default, "AWS::SageMaker::Endpoint")
    rollback_ids = {
        logical_id
        for logical_id, alarm in default.find_resources("AWS::CloudWatch::Alarm").items()
        if alarm["Properties"]["AlarmName"] in ROLLBACK_ALARMS
    }
    assert rollback_ids <= set(endpoint["DependsOn"])
    # The endpoint names the alarms by plain string, never by reference (a Ref would be a cycle risk).
    assert "Ref" not in str(endpoint["Properties"]["DeploymentConfig"])


def test_execution_role_may_describe_only_the_rollback_alarms(default: Template) -> None:
    _, model = only_resource(default, "AWS::SageMaker::Model")
    role_id = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    statements = role_statements(default, role_id)
    statement = next(s for s in statements if s.get("Sid") == "DescribeAutoRollbackAlarms")
    assert statement["Action"] == "cloudwatch:DescribeAlarms"
    resources = [flatten_join(resource) for resource in statement["Resource"]]
    assert [resource.rsplit(":alarm:", 1)[1] for resource in resources] == ROLLBACK_ALARMS
    # The twin: no other statement of the role mentions alarms.
    others = [s for s in statements if s is not statement]
    assert not any("cloudwatch:DescribeAlarms" in str(s["Action"]) for s in others)


def test_scaling_tracks_open_streams_and_keeps_the_scaled_count_on_update(default: Template) -> None:
    target_id, target = only_resource(default, "AWS::ApplicationAutoScaling::ScalableTarget")
    endpoint_id, endpoint = only_resource(default, "AWS::SageMaker::Endpoint")
    assert target["Properties"]["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 4)
    assert endpoint_id in target["DependsOn"]
    _, policy = only_resource(default, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    )
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    assert endpoint["Properties"]["RetainAllVariantProperties"] is True


def test_scaling_can_be_turned_off_and_then_updates_apply_the_instance_count(
    rolling_without_scaling: Template,
) -> None:
    rolling_without_scaling.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    rolling_without_scaling.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 0)
    _, endpoint = only_resource(rolling_without_scaling, "AWS::SageMaker::Endpoint")
    assert "RetainAllVariantProperties" not in endpoint["Properties"]


def test_rolling_updates_replace_batches_and_still_roll_back(rolling_without_scaling: Template) -> None:
    _, endpoint = only_resource(rolling_without_scaling, "AWS::SageMaker::Endpoint")
    config: dict[str, Any] = endpoint["Properties"]["DeploymentConfig"]
    assert config["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert "BlueGreenUpdatePolicy" not in config
    assert [alarm["AlarmName"] for alarm in config["AutoRollbackConfiguration"]["Alarms"]] == ROLLBACK_ALARMS


def test_stack_exposes_the_monitoring_pieces() -> None:
    stack = shared_stack({"endpoint_name": "speech", "smoke_test": "false"})
    assert stack.monitoring.rollback_alarm_names == (
        "speech-new-fleet-5xx-error-rate",
        "speech-new-fleet-model-latency",
    )
    assert stack.monitoring.alarms.error_5xx is not None and stack.monitoring.topic is not None
    assert stack.monitoring.dashboard is not None and stack.scaling is not None
