"""Every alarm and dashboard graph uses only statistics the SageMaker metric reference documents for its
metric (``stacks.endpoint_metrics.DOCUMENTED_STATISTICS``), read from the synthesized template."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk.assertions import Template

from stacks.endpoint_metrics import DOCUMENTED_STATISTICS, SAGEMAKER_NAMESPACE, EndpointMetrics
from tests.unit.conftest import build_stack, template_of
from tests.unit.operations_support import dashboard_body

VARIANTS = {
    "default": {},
    "every-alarm": {
        "alarm_first_chunk_latency_threshold_ms": "500",
        "alarm_no_traffic_minutes": "60",
        "alarm_latency_statistic": "Maximum",
    },
}


def used_statistics(template: Template) -> list[tuple[str, str, str]]:
    """(where, metric, statistic) for every AWS/SageMaker metric an alarm or the dashboard reads."""
    used = []
    for logical_id, alarm in template.find_resources("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if props.get("Namespace") == SAGEMAKER_NAMESPACE:
            statistic = props.get("Statistic") or props.get("ExtendedStatistic")
            used.append((logical_id, props["MetricName"], statistic))
    for widget in dashboard_body(template)["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            options = row[-1] if isinstance(row[-1], dict) else {}
            if "expression" in options or row[0] != SAGEMAKER_NAMESPACE:
                continue
            title = widget["properties"]["title"]
            used.append((f"dashboard: {title}", row[1], options.get("stat", "Average")))
    return used


def undocumented(used: list[tuple[str, str, str]]) -> list[str]:
    return [
        f"{where}: {metric} {statistic}"
        for where, metric, statistic in used
        if statistic not in DOCUMENTED_STATISTICS.get(metric, frozenset())
    ]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_alarms_and_dashboard_use_only_documented_statistics(variant: str) -> None:
    used = used_statistics(template_of(VARIANTS[variant]))
    metrics = {metric for _, metric, _ in used}
    assert {"ModelLatency", "ConcurrentRequestsPerModel", "Invocation5XXErrors"} <= metrics
    assert undocumented(used) == []


def test_check_catches_a_percentile_and_an_average_of_concurrency() -> None:
    # The twin: what the stack used before (p90 latency alarm, Average concurrency on the dashboard).
    stack = build_stack()
    alarm = cloudwatch.Alarm(
        stack,
        "PercentileLatency",
        metric=cloudwatch.Metric(
            namespace=SAGEMAKER_NAMESPACE,
            metric_name="ModelLatency",
            statistic="p90",
            period=cdk.Duration.minutes(1),
        ),
        threshold=1,
        evaluation_periods=1,
    )
    template = Template.from_stack(stack)
    alarm_id = stack.resolve(alarm.node.default_child.logical_id)  # type: ignore[union-attr]
    assert f"{alarm_id}: ModelLatency p90" in undocumented(used_statistics(template))
    concurrency = [("dashboard: test", "ConcurrentRequestsPerModel", "Average")]
    assert undocumented(concurrency) == ["dashboard: test: ConcurrentRequestsPerModel Average"]


@pytest.mark.parametrize(
    ("metric", "statistic"),
    [("ModelLatency", "p90"), ("ConcurrentRequestsPerModel", "Average"), ("Invocations", "Average")],
)
def test_endpoint_metrics_refuse_an_undocumented_statistic(metric: str, statistic: str) -> None:
    metrics = EndpointMetrics(endpoint_name="e", variant_name="AllTraffic")
    with pytest.raises(ValueError, match=rf"{metric} with statistic '{statistic}': the SageMaker metric"):
        metrics.invocation(metric, statistic=statistic, period=cdk.Duration.minutes(1))


def test_documented_statistics_quote_the_reference() -> None:
    assert DOCUMENTED_STATISTICS["ConcurrentRequestsPerModel"] == {"Minimum", "Maximum"}
    assert DOCUMENTED_STATISTICS["ModelLatency"] == {"Average", "Sum", "Minimum", "Maximum", "SampleCount"}
    assert DOCUMENTED_STATISTICS["Invocations"] == {"Sum"}
    assert json.dumps(sorted(DOCUMENTED_STATISTICS["Invocation5XXErrors"])) == '["Average", "Sum"]'


def test_the_old_percentile_setting_is_refused_with_its_replacement() -> None:
    from stacks.settings import Settings, SettingsError

    with pytest.raises(
        SettingsError, match=r"'alarm_latency_percentile' = '90' was renamed: use alarm_latency_stat"
    ):
        Settings.from_context({"alarm_latency_percentile": "90"})
