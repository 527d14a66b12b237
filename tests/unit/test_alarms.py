"""EndpointAlarms: every alarm's metric, namespace, dimensions, statistic, threshold, window, missing data
and actions; the composite; the rollback set; settings reaching their alarms; settings validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from stacks.alarms import AlarmSettings, EndpointAlarms
from stacks.endpoint_metrics import ENDPOINT_INSTANCE_NAMESPACE, SAGEMAKER_NAMESPACE
from stacks.instance_types import instance_spec
from tests.unit.operations_support import (
    ENDPOINT_NAME,
    MULTI_GPU_GPUS,
    MULTI_GPU_INSTANCE,
    MULTI_GPU_VCPUS,
    VARIANT_NAME,
    alarm_by_name,
    alarm_names,
    bare_stack,
    flatten_join,
    resources_of,
)

TOPIC_ID = "Topic"
# The endpoint config being deployed (the stack passes its name attribute).
DEPLOYED_CONFIG = "bidi-config-v2"


@dataclass(frozen=True)
class Built:
    template: Template
    alarms: EndpointAlarms
    topic_logical_id: str


def build(
    settings: AlarmSettings,
    *,
    instance_type: str = MULTI_GPU_INSTANCE,
    with_topic: bool = True,
) -> Built:
    stack = bare_stack()
    topic = sns.Topic(stack, TOPIC_ID) if with_topic else None
    alarms = EndpointAlarms(
        stack,
        "Alarms",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=instance_type,
        settings=settings,
        topic=topic,
        deployed_config_name=DEPLOYED_CONFIG,
    )
    topic_logical_id = stack.get_logical_id(topic.node.default_child) if topic else ""
    return Built(Template.from_stack(stack), alarms, topic_logical_id)


@pytest.fixture(scope="module")
def full() -> Built:
    """Every alarm on, including the opt-in ones, on a 4-GPU instance, with a topic."""
    return build(AlarmSettings(alarm_first_chunk_latency_threshold_ms=800.0, alarm_no_traffic_minutes=120))


@dataclass(frozen=True)
class Expected:
    suffix: str
    namespace: str
    metric: str
    statistic: str  # "p90" style goes to ExtendedStatistic
    threshold: float
    window: tuple[int, int, int]  # period seconds, evaluation periods, datapoints to alarm
    missing: str
    comparison: str = "GreaterThanThreshold"


SM, INSTANCE = SAGEMAKER_NAMESPACE, ENDPOINT_INSTANCE_NAMESPACE
REQUEST_WINDOW = (60, 5, 3)
RESOURCE_WINDOW = (300, 3, 3)
EXPECTED_FULL = [
    Expected("5xx-error-rate", SM, "Invocation5XXErrors", "Average", 0.05, REQUEST_WINDOW, "notBreaching"),
    Expected("4xx-error-rate", SM, "Invocation4XXErrors", "Average", 0.10, REQUEST_WINDOW, "notBreaching"),
    Expected(
        "model-error-rate", SM, "InvocationModelErrors", "Average", 0.05, REQUEST_WINDOW, "notBreaching"
    ),
    # Latencies: settings in ms, metric in µs.
    Expected("model-latency", SM, "ModelLatency", "Average", 2_000_000, REQUEST_WINDOW, "notBreaching"),
    Expected(
        "first-chunk-latency", SM, "FirstChunkLatency", "Average", 800_000, REQUEST_WINDOW, "notBreaching"
    ),
    # Utilizations summed over devices: percent-of-instance x device count.
    Expected(
        "cpu-utilization",
        INSTANCE,
        "CPUUtilization",
        "Average",
        90 * MULTI_GPU_VCPUS,
        RESOURCE_WINDOW,
        "missing",
    ),
    Expected("memory-utilization", INSTANCE, "MemoryUtilization", "Maximum", 90, RESOURCE_WINDOW, "missing"),
    Expected(
        "gpu-utilization",
        INSTANCE,
        "GPUUtilization",
        "Average",
        95 * MULTI_GPU_GPUS,
        RESOURCE_WINDOW,
        "missing",
    ),
    Expected(
        "gpu-memory-utilization",
        INSTANCE,
        "GPUMemoryUtilization",
        "Maximum",
        90 * MULTI_GPU_GPUS,
        RESOURCE_WINDOW,
        "missing",
    ),
    Expected("disk-utilization", INSTANCE, "DiskUtilization", "Maximum", 80, RESOURCE_WINDOW, "missing"),
    # No invocation data point at all means no traffic.
    Expected("no-traffic", SM, "Invocations", "Sum", 1, (7200, 1, 1), "breaching", "LessThanThreshold"),
]


@pytest.mark.parametrize("expected", EXPECTED_FULL, ids=lambda e: e.suffix)
def test_alarm_is_defined_on_the_right_metric_with_its_window_and_actions(
    full: Built, expected: Expected
) -> None:
    _, props = alarm_by_name(full.template, f"{ENDPOINT_NAME}-{expected.suffix}")
    assert props["Namespace"] == expected.namespace
    assert props["MetricName"] == expected.metric
    assert props["Dimensions"] == [
        {"Name": "EndpointName", "Value": ENDPOINT_NAME},
        {"Name": "VariantName", "Value": VARIANT_NAME},
    ]
    if expected.statistic.startswith("p"):
        assert props["ExtendedStatistic"] == expected.statistic
        assert "Statistic" not in props
    else:
        assert props["Statistic"] == expected.statistic
        assert "ExtendedStatistic" not in props
    assert props["Threshold"] == pytest.approx(expected.threshold)
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == expected.window
    assert props["ComparisonOperator"] == expected.comparison
    assert props["TreatMissingData"] == expected.missing
    topic_ref = [{"Ref": full.topic_logical_id}]
    assert props["AlarmActions"] == topic_ref
    assert props["OKActions"] == topic_ref
    assert props["AlarmDescription"], "the description is the first-response hint in the notification"


NEW_FLEET_SUFFIXES = ("new-fleet-5xx-error-rate", "new-fleet-model-latency", "new-fleet-first-chunk-latency")


def test_every_alarm_is_covered_by_the_table(full: Built) -> None:
    # The table's alarms see every fleet; the new-fleet copies are checked with the rollback set.
    expected = {f"{ENDPOINT_NAME}-{e.suffix}" for e in EXPECTED_FULL}
    new_fleet = {f"{ENDPOINT_NAME}-{suffix}" for suffix in NEW_FLEET_SUFFIXES}
    assert alarm_names(full.template) == expected | new_fleet
    assert len(full.alarms.all_alarms) == len(EXPECTED_FULL) + len(NEW_FLEET_SUFFIXES)


def test_composite_fires_on_the_user_facing_alarms_only_and_notifies(full: Built) -> None:
    composites = resources_of(full.template, "AWS::CloudWatch::CompositeAlarm")
    assert len(composites) == 1
    (composite,) = composites.values()
    props = composite["Properties"]
    assert props["AlarmName"] == f"{ENDPOINT_NAME}-unhealthy"
    rule = flatten_join(props["AlarmRule"])
    members = {
        "5xx-error-rate",
        "model-error-rate",
        "model-latency",
        "first-chunk-latency",
        "memory-utilization",
    }
    members |= {"gpu-memory-utilization", "disk-utilization"}
    for suffix in {e.suffix for e in EXPECTED_FULL}:
        logical_id, _ = alarm_by_name(full.template, f"{ENDPOINT_NAME}-{suffix}")
        reference = f'ALARM("<GetAtt:{logical_id}.Arn>")'
        assert (reference in rule) == (suffix in members), suffix
    assert rule.count(" OR ") == len(members) - 1
    assert props["AlarmActions"] == [{"Ref": full.topic_logical_id}]
    assert props["OKActions"] == [{"Ref": full.topic_logical_id}]


def test_rollback_alarms_are_the_new_fleets_5xx_and_latency_named_by_plain_strings(full: Built) -> None:
    suffixes = ("5xx-error-rate", "model-latency", "first-chunk-latency")
    expected = tuple(f"{ENDPOINT_NAME}-new-fleet-{s}" for s in suffixes)
    assert full.alarms.rollback_alarm_names == expected
    assert not any(cdk.Token.is_unresolved(name) for name in full.alarms.rollback_alarm_names)
    assert len(full.alarms.rollback_alarms) == len(expected)
    for suffix, name in zip(suffixes, expected, strict=True):
        _, alarm = alarm_by_name(full.template, name)  # exists under exactly that name
        assert {"Name": "EndpointConfigName", "Value": DEPLOYED_CONFIG} in alarm["Dimensions"]
        assert "AlarmActions" not in alarm  # its all-fleet twin pages
        _, twin = alarm_by_name(full.template, f"{ENDPOINT_NAME}-{suffix}")
        assert "EndpointConfigName" not in {d["Name"] for d in twin["Dimensions"]}
        assert twin["AlarmActions"] == [{"Ref": full.topic_logical_id}]
        same = ("MetricName", "Threshold", "Period", "EvaluationPeriods", "DatapointsToAlarm")
        assert {key: alarm.get(key) for key in same} == {key: twin.get(key) for key in same}


def test_without_a_deployed_config_there_is_nothing_to_roll_back_on() -> None:
    # The twin: alarms built for paging only; all of them see both fleets.
    stack = bare_stack()
    alarms = EndpointAlarms(
        stack,
        "Alarms",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=MULTI_GPU_INSTANCE,
        settings=AlarmSettings(),
    )
    assert (alarms.rollback_alarms, alarms.rollback_alarm_names) == ((), ())
    template = Template.from_stack(stack)
    assert not any("new-fleet" in name for name in alarm_names(template))


@pytest.fixture(scope="module")
def defaults_one_gpu_no_topic() -> Built:
    return build(AlarmSettings(), instance_type="ml.g6.2xlarge", with_topic=False)


def test_opt_in_alarms_are_absent_by_default(defaults_one_gpu_no_topic: Built) -> None:
    names = alarm_names(defaults_one_gpu_no_topic.template)
    assert f"{ENDPOINT_NAME}-first-chunk-latency" not in names
    assert f"{ENDPOINT_NAME}-no-traffic" not in names
    assert defaults_one_gpu_no_topic.alarms.first_chunk_latency is None
    assert defaults_one_gpu_no_topic.alarms.no_traffic is None
    assert defaults_one_gpu_no_topic.alarms.rollback_alarm_names == (
        f"{ENDPOINT_NAME}-new-fleet-5xx-error-rate",
        f"{ENDPOINT_NAME}-new-fleet-model-latency",
    )


def test_single_gpu_thresholds_are_not_multiplied(defaults_one_gpu_no_topic: Built) -> None:
    spec = instance_spec("ml.g6.2xlarge")
    assert (spec.vcpus, spec.gpus) == (8, 1)
    _, gpu = alarm_by_name(defaults_one_gpu_no_topic.template, f"{ENDPOINT_NAME}-gpu-utilization")
    _, cpu = alarm_by_name(defaults_one_gpu_no_topic.template, f"{ENDPOINT_NAME}-cpu-utilization")
    assert gpu["Threshold"] == 95
    assert cpu["Threshold"] == 90 * 8


def test_without_a_topic_alarms_have_no_actions(defaults_one_gpu_no_topic: Built) -> None:
    for resource in resources_of(defaults_one_gpu_no_topic.template, "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in resource["Properties"]
        assert "OKActions" not in resource["Properties"]


def test_model_latency_alarm_can_be_switched_off_and_leaves_the_rollback_set() -> None:
    built = build(AlarmSettings(alarm_model_latency_threshold_ms=None), with_topic=False)
    assert f"{ENDPOINT_NAME}-model-latency" not in alarm_names(built.template)
    assert built.alarms.model_latency is None
    assert f"{ENDPOINT_NAME}-new-fleet-model-latency" not in alarm_names(built.template)
    assert built.alarms.rollback_alarm_names == (f"{ENDPOINT_NAME}-new-fleet-5xx-error-rate",)
    (composite,) = resources_of(built.template, "AWS::CloudWatch::CompositeAlarm").values()
    assert flatten_join(composite["Properties"]["AlarmRule"]).count("ALARM(") == 5


@pytest.mark.parametrize("instance_type", ["ml.c5.xlarge", "ml.inf2.xlarge"])
def test_instances_without_nvidia_gpus_get_no_gpu_alarms(instance_type: str) -> None:
    built = build(AlarmSettings(), instance_type=instance_type, with_topic=False)
    names = alarm_names(built.template)
    assert f"{ENDPOINT_NAME}-gpu-utilization" not in names
    assert f"{ENDPOINT_NAME}-gpu-memory-utilization" not in names
    assert f"{ENDPOINT_NAME}-cpu-utilization" in names
    assert built.alarms.gpu is None and built.alarms.gpu_memory is None


# Every threshold and window setting set to a distinct non-default value, so a setting wired to the wrong
# alarm (or not wired at all) shows up as a wrong number.
TUNED = AlarmSettings(
    alarm_request_period_seconds=120,
    alarm_request_evaluation_periods=7,
    alarm_request_datapoints_to_alarm=4,
    alarm_5xx_rate_threshold=0.011,
    alarm_4xx_rate_threshold=0.22,
    alarm_model_error_rate_threshold=0.033,
    alarm_latency_statistic="Maximum",
    alarm_model_latency_threshold_ms=1234.0,
    alarm_first_chunk_latency_threshold_ms=345.0,
    alarm_resource_period_seconds=600,
    alarm_resource_evaluation_periods=4,
    alarm_resource_datapoints_to_alarm=2,
    alarm_cpu_utilization_threshold_percent=71.0,
    alarm_memory_utilization_threshold_percent=72.0,
    alarm_gpu_utilization_threshold_percent=73.0,
    alarm_gpu_memory_utilization_threshold_percent=74.0,
    alarm_disk_utilization_threshold_percent=75.0,
    alarm_no_traffic_minutes=45,
)


@pytest.fixture(scope="module")
def tuned() -> Built:
    return build(TUNED)


@pytest.mark.parametrize(
    ("setting", "suffix", "threshold"),
    [
        ("alarm_5xx_rate_threshold", "5xx-error-rate", 0.011),
        ("alarm_4xx_rate_threshold", "4xx-error-rate", 0.22),
        ("alarm_model_error_rate_threshold", "model-error-rate", 0.033),
        ("alarm_model_latency_threshold_ms", "model-latency", 1_234_000),
        ("alarm_first_chunk_latency_threshold_ms", "first-chunk-latency", 345_000),
        ("alarm_cpu_utilization_threshold_percent", "cpu-utilization", 71 * MULTI_GPU_VCPUS),
        ("alarm_memory_utilization_threshold_percent", "memory-utilization", 72),
        ("alarm_gpu_utilization_threshold_percent", "gpu-utilization", 73 * MULTI_GPU_GPUS),
        ("alarm_gpu_memory_utilization_threshold_percent", "gpu-memory-utilization", 74 * MULTI_GPU_GPUS),
        ("alarm_disk_utilization_threshold_percent", "disk-utilization", 75),
    ],
)
def test_each_threshold_setting_reaches_its_alarm(
    tuned: Built, setting: str, suffix: str, threshold: float
) -> None:
    assert getattr(TUNED, setting) != getattr(AlarmSettings(), setting), (
        "the tuned value must differ from the default"
    )
    _, props = alarm_by_name(tuned.template, f"{ENDPOINT_NAME}-{suffix}")
    assert props["Threshold"] == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("suffix", "period", "evaluations", "datapoints"),
    [
        *[(s, 120, 7, 4) for s in ("5xx-error-rate", "4xx-error-rate", "model-error-rate", "model-latency")],
        ("first-chunk-latency", 120, 7, 4),
        *[
            (s, 600, 4, 2)
            for s in ("cpu-utilization", "memory-utilization", "gpu-utilization", "disk-utilization")
        ],
        ("gpu-memory-utilization", 600, 4, 2),
        ("no-traffic", 45 * 60, 1, 1),
    ],
)
def test_window_settings_reach_their_alarms(
    tuned: Built, suffix: str, period: int, evaluations: int, datapoints: int
) -> None:
    _, props = alarm_by_name(tuned.template, f"{ENDPOINT_NAME}-{suffix}")
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (
        period,
        evaluations,
        datapoints,
    )


@pytest.mark.parametrize("suffix", ["model-latency", "first-chunk-latency"])
def test_latency_statistic_setting_reaches_latency_alarms(tuned: Built, suffix: str) -> None:
    for name in (f"{ENDPOINT_NAME}-{suffix}", f"{ENDPOINT_NAME}-new-fleet-{suffix}"):
        _, props = alarm_by_name(tuned.template, name)
        assert (props["Statistic"], props.get("ExtendedStatistic")) == ("Maximum", None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"alarm_5xx_rate_threshold": 1.5},
            r"alarm_5xx_rate_threshold=1\.5: must be a fraction between 0 and 1",
        ),
        ({"alarm_4xx_rate_threshold": 0}, r"alarm_4xx_rate_threshold=0: must be a fraction"),
        (
            {"alarm_model_error_rate_threshold": -0.1},
            r"alarm_model_error_rate_threshold=-0\.1: must be a fraction",
        ),
        (
            {"alarm_cpu_utilization_threshold_percent": 150.0},
            r"alarm_cpu_utilization_threshold_percent=150\.0: .*100",
        ),
        ({"alarm_disk_utilization_threshold_percent": 0.0}, r"alarm_disk_utilization_threshold_percent=0\.0"),
        (
            {"alarm_model_latency_threshold_ms": 0.0},
            r"alarm_model_latency_threshold_ms=0\.0: must be a positive",
        ),
        ({"alarm_first_chunk_latency_threshold_ms": -5.0}, r"alarm_first_chunk_latency_threshold_ms=-5\.0"),
        (
            {"alarm_latency_statistic": "p90"},
            r"alarm_latency_statistic='p90': must be one of Average, Maximum .*documents no percentiles",
        ),
        (
            {"alarm_request_period_seconds": 30},
            r"alarm_request_period_seconds=30: must be a whole number of minutes",
        ),
        ({"alarm_resource_period_seconds": 90}, r"alarm_resource_period_seconds=90"),
        ({"alarm_request_evaluation_periods": 0}, r"alarm_request_evaluation_periods=0: must be at least 1"),
        (
            {"alarm_resource_datapoints_to_alarm": 4},
            r"alarm_resource_datapoints_to_alarm=4: must be between 1 and "
            r"alarm_resource_evaluation_periods \(3\)",
        ),
        (
            {"alarm_request_period_seconds": 3600, "alarm_request_evaluation_periods": 25},
            r"alarm_request_period_seconds x alarm_request_evaluation_periods = 90000: .*one day",
        ),
        (
            {"alarm_no_traffic_minutes": 2},
            r"alarm_no_traffic_minutes=2: must be empty \(no alarm\) or whole minutes",
        ),
    ],
)
def test_bad_alarm_settings_are_refused_with_setting_value_and_allowed(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmSettings(**overrides)


def test_unknown_instance_type_is_refused_with_the_known_families() -> None:
    with pytest.raises(ValueError, match=r"instance_type='ml\.g9\.xlarge': .*known families: .*ml\.g6,"):
        instance_spec("ml.g9.xlarge")


def test_endpoint_name_token_is_refused_because_it_would_create_a_cycle() -> None:
    stack = bare_stack()
    with pytest.raises(ValueError, match="endpoint_name is a token"):
        EndpointAlarms(
            stack,
            "Alarms",
            endpoint_name=cdk.Fn.ref("SomeEndpoint"),
            variant_name=VARIANT_NAME,
            instance_type=MULTI_GPU_INSTANCE,
            settings=AlarmSettings(),
        )


def test_endpoint_name_sagemaker_would_reject_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"endpoint_name='bad_name': must be 1-63 letters, digits or hyphens"
    ):
        EndpointAlarms(
            bare_stack(),
            "Alarms",
            endpoint_name="bad_name",
            variant_name=VARIANT_NAME,
            instance_type=MULTI_GPU_INSTANCE,
            settings=AlarmSettings(),
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alarm_5xx_rate_threshold": "0.1"}, r"alarm_5xx_rate_threshold='0\.1': must be float, not str"),
        (
            {"alarm_no_traffic_minutes": 5.5},
            r"alarm_no_traffic_minutes=5\.5: must be int or empty, not float",
        ),
        ({"alarm_request_period_seconds": True}, r"alarm_request_period_seconds=True: must be int, not bool"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_by_name(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmSettings(**overrides)


def test_whole_numbers_are_accepted_where_fractions_are_declared() -> None:
    assert AlarmSettings(alarm_model_latency_threshold_ms=1500).alarm_model_latency_threshold_ms == 1500
