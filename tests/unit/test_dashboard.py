"""EndpointDashboard: one dashboard; its parsed body has the key graphs, in operator units, and the alarms."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.alarms import AlarmSettings, EndpointAlarms
from stacks.dashboard import EndpointDashboard
from stacks.endpoint_metrics import ENDPOINT_INSTANCE_NAMESPACE, SAGEMAKER_NAMESPACE
from tests.unit.operations_support import (
    ACCOUNT,
    ENDPOINT_NAME,
    MULTI_GPU_GPUS,
    MULTI_GPU_INSTANCE,
    MULTI_GPU_VCPUS,
    REGION,
    VARIANT_NAME,
    bare_stack,
    dashboard_body,
    flatten_join,
    resources_of,
)


def _build(instance_type: str) -> tuple[Template, EndpointAlarms]:
    stack = bare_stack()
    alarms = EndpointAlarms(
        stack,
        "Alarms",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=instance_type,
        settings=AlarmSettings(),
    )
    EndpointDashboard(
        stack,
        "Dashboard",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=instance_type,
        alarms=[*alarms.all_alarms, alarms.unhealthy],
    )
    return Template.from_stack(stack), alarms


@pytest.fixture(scope="module")
def gpu_dashboard() -> tuple[Template, dict[str, Any]]:
    template, _ = _build(MULTI_GPU_INSTANCE)
    return template, dashboard_body(template)


def _graph(body: dict[str, Any], title_start: str) -> dict[str, Any]:
    graphs = [
        w
        for w in body["widgets"]
        if w["type"] == "metric" and w["properties"]["title"].startswith(title_start)
    ]
    assert len(graphs) == 1, f"expected one graph titled {title_start!r}..."
    properties: dict[str, Any] = graphs[0]["properties"]
    return properties


def _series(graph: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(metric id or label -> metric description, expression label -> expression) of a graph."""
    metrics: dict[str, dict[str, Any]] = {}
    expressions: dict[str, str] = {}
    for row in graph["metrics"]:
        options = row[-1] if isinstance(row[-1], dict) else {}
        if "expression" in options:
            expressions[options["label"]] = options["expression"]
            continue
        namespace, name, *dimensions = row[:-1] if options else row
        metrics[options.get("id", options.get("label", name))] = {
            "namespace": namespace,
            "name": name,
            "dimensions": dict(zip(dimensions[::2], dimensions[1::2], strict=True)),
            "stat": options.get("stat", "Average"),  # Average is the dashboard default
        }
    return metrics, expressions


def _assert_on_this_variant(metrics: dict[str, dict[str, Any]], namespace: str) -> None:
    for metric in metrics.values():
        assert metric["namespace"] == namespace, metric
        assert metric["dimensions"] == {"EndpointName": ENDPOINT_NAME, "VariantName": VARIANT_NAME}


def _dashboard_names(stack: cdk.Stack) -> list[Any]:
    EndpointDashboard(
        stack,
        "Dashboard",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=MULTI_GPU_INSTANCE,
        alarms=[],
    )
    dashboards = resources_of(Template.from_stack(stack), "AWS::CloudWatch::Dashboard")
    return [dashboard["Properties"]["DashboardName"] for dashboard in dashboards.values()]


def test_one_dashboard_named_after_the_endpoint_and_region(
    gpu_dashboard: tuple[Template, dict[str, Any]],
) -> None:
    template, _ = gpu_dashboard
    dashboards = resources_of(template, "AWS::CloudWatch::Dashboard")
    names = [d["Properties"]["DashboardName"] for d in dashboards.values()]
    assert names == [f"{ENDPOINT_NAME}-operations-{REGION}"]


def test_the_same_endpoint_in_two_regions_gets_two_dashboards() -> None:
    # Dashboard names are global to the account; endpoint names are only unique within a region.
    names = {
        region: _dashboard_names(
            cdk.Stack(cdk.App(), "Operations", env=cdk.Environment(account=ACCOUNT, region=region))
        )
        for region in ("eu-west-1", "us-east-1")
    }
    assert names["eu-west-1"] != names["us-east-1"]
    # An environment-agnostic stack names it after the region it is deployed to, at deploy time.
    (agnostic,) = _dashboard_names(cdk.Stack(cdk.App(), "Agnostic"))
    assert flatten_join(agnostic) == f"{ENDPOINT_NAME}-operations-<Ref:AWS::Region>"


def test_layout_is_header_alarms_then_six_graphs(gpu_dashboard: tuple[Template, dict[str, Any]]) -> None:
    _, body = gpu_dashboard
    assert [w["type"] for w in body["widgets"]] == ["text", "alarm"] + ["metric"] * 6
    assert ENDPOINT_NAME in body["widgets"][0]["properties"]["markdown"]
    assert f"/aws/sagemaker/Endpoints/{ENDPOINT_NAME}" in body["widgets"][0]["properties"]["markdown"]


def test_alarm_widget_shows_every_alarm_and_the_composite(
    gpu_dashboard: tuple[Template, dict[str, Any]],
) -> None:
    template, body = gpu_dashboard
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    alarm_ids = set(resources_of(template, "AWS::CloudWatch::Alarm"))
    alarm_ids |= set(resources_of(template, "AWS::CloudWatch::CompositeAlarm"))
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(f"<GetAtt:{i}.Arn>" for i in alarm_ids)


def test_traffic_graph_counts_invocations(gpu_dashboard: tuple[Template, dict[str, Any]]) -> None:
    metrics, _ = _series(_graph(gpu_dashboard[1], "Invocations"))
    _assert_on_this_variant(metrics, SAGEMAKER_NAMESPACE)
    assert {(m["name"], m["stat"]) for m in metrics.values()} == {
        ("Invocations", "Sum"),
        ("InvocationsPerInstance", "Sum"),
    }


def test_concurrency_graph_shows_open_streams_per_instance(
    gpu_dashboard: tuple[Template, dict[str, Any]],
) -> None:
    metrics, _ = _series(_graph(gpu_dashboard[1], "Concurrent streams"))
    _assert_on_this_variant(metrics, SAGEMAKER_NAMESPACE)
    assert {(m["name"], m["stat"]) for m in metrics.values()} == {
        ("ConcurrentRequestsPerModel", "Maximum"),
        ("ConcurrentRequestsPerModel", "Minimum"),  # the reference documents Min and Max only
    }


def test_error_rates_are_averages_shown_in_percent(gpu_dashboard: tuple[Template, dict[str, Any]]) -> None:
    metrics, expressions = _series(_graph(gpu_dashboard[1], "Error rate"))
    _assert_on_this_variant(metrics, SAGEMAKER_NAMESPACE)
    assert {m["name"] for m in metrics.values()} == {
        "Invocation5XXErrors",
        "Invocation4XXErrors",
        "InvocationModelErrors",
    }
    assert all(m["stat"] == "Average" for m in metrics.values())
    assert sorted(expressions) == ["4XX", "5XX", "Model errors"]
    for label, expression in expressions.items():
        (metric_id,) = [i for i in metrics if i in expression]
        assert expression == f"100 * {metric_id}", label


def test_latencies_are_converted_from_microseconds_to_ms(
    gpu_dashboard: tuple[Template, dict[str, Any]],
) -> None:
    graph = _graph(gpu_dashboard[1], "Latency (ms)")
    metrics, expressions = _series(graph)
    _assert_on_this_variant(metrics, SAGEMAKER_NAMESPACE)
    assert {(m["name"], m["stat"]) for m in metrics.values()} == {
        # The reference documents Average, Sum, Min, Max, Sample Count for latencies: no percentiles.
        ("ModelLatency", "Average"),
        ("ModelLatency", "Maximum"),
        ("OverheadLatency", "Average"),
        ("FirstChunkLatency", "Average"),
    }
    assert len(expressions) == len(metrics)
    for metric_id in metrics:
        assert f"{metric_id} / 1000" in expressions.values()
    assert graph["yAxis"]["left"]["label"] == "ms"


def test_cpu_and_gpu_are_normalised_to_percent_of_instance(
    gpu_dashboard: tuple[Template, dict[str, Any]],
) -> None:
    metrics, expressions = _series(_graph(gpu_dashboard[1], "CPU and GPU"))
    _assert_on_this_variant(metrics, ENDPOINT_INSTANCE_NAMESPACE)
    by_name = {m["name"]: metric_id for metric_id, m in metrics.items()}
    assert expressions == {
        "CPU": f"{by_name['CPUUtilization']} / {MULTI_GPU_VCPUS}",
        "GPU": f"{by_name['GPUUtilization']} / {MULTI_GPU_GPUS}",
    }


def test_memory_disk_and_gpu_memory_show_the_fullest_instance(
    gpu_dashboard: tuple[Template, dict[str, Any]],
) -> None:
    metrics, expressions = _series(_graph(gpu_dashboard[1], "Memory"))
    _assert_on_this_variant(metrics, ENDPOINT_INSTANCE_NAMESPACE)
    assert {(m["name"], m["stat"]) for m in metrics.values()} == {
        ("MemoryUtilization", "Maximum"),
        ("DiskUtilization", "Maximum"),
        ("GPUMemoryUtilization", "Maximum"),
    }
    by_name = {m["name"]: metric_id for metric_id, m in metrics.items()}
    assert expressions == {"GPU memory": f"{by_name['GPUMemoryUtilization']} / {MULTI_GPU_GPUS}"}


def test_cpu_instance_dashboard_has_no_gpu_series() -> None:
    template, _ = _build("ml.c5.xlarge")
    body = dashboard_body(template)
    compute_metrics, compute_expressions = _series(_graph(body, "CPU and GPU"))
    assert {m["name"] for m in compute_metrics.values()} == {"CPUUtilization"}
    assert list(compute_expressions.values()) == [f"{next(iter(compute_metrics))} / 4"]
    memory_metrics, _ = _series(_graph(body, "Memory"))
    assert "GPUMemoryUtilization" not in {m["name"] for m in memory_metrics.values()}
