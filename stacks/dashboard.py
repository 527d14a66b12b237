"""One CloudWatch dashboard for a streaming endpoint: traffic, concurrency, error rates, latency, resources.

Everything is shown in the unit an operator thinks in, not the unit SageMaker publishes: latencies in
milliseconds (published in µs), error rates in percent of requests (the Average of a 0/1 metric), and
utilizations in percent of the whole instance (published summed over vCPUs or GPUs).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.endpoint_metrics import (
    AVERAGE,
    FIRST_CHUNK_LATENCY_METRIC,
    MAXIMUM,
    MICROSECONDS_PER_MILLISECOND,
    MINIMUM,
    SUM,
    EndpointMetrics,
    validate_endpoint_name,
)
from stacks.instance_types import instance_spec

GRAPH_PERIOD = cdk.Duration.minutes(1)
GRID_WIDTH = 24  # CloudWatch dashboards are 24 units wide
GRAPH_WIDTH = GRID_WIDTH // 3
GRAPH_HEIGHT = 6
# ModelLatency's documented statistics include no percentiles (see endpoint_metrics.DOCUMENTED_STATISTICS).
LATENCY_STATISTICS = (("Average", "avg"), ("Maximum", "max"))


class EndpointDashboard(Construct):
    """The operations dashboard (`self.dashboard`) of one variant, named `<endpoint>-operations-<region>`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        instance_type: str,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        validate_endpoint_name(endpoint_name)
        spec = instance_spec(instance_type)
        self._metrics = EndpointMetrics(endpoint_name=endpoint_name, variant_name=variant_name)
        # Dashboard names are global to the account while endpoint names are per region: the region keeps
        # the same endpoint name deployed in two regions from fighting over one dashboard. It is the
        # stack's region, a literal for an environment-specific stack and ${AWS::Region} otherwise.
        self.dashboard_name = f"{endpoint_name}-operations-{cdk.Stack.of(self).region}"

        header = cloudwatch.TextWidget(
            markdown=(
                f"# Endpoint `{endpoint_name}` / variant `{variant_name}` ({instance_type})\n"
                f"Container logs: log group `/aws/sagemaker/Endpoints/{endpoint_name}`. "
                "Each alarm's description says what to check first."
            ),
            width=GRID_WIDTH,
            height=2,
        )
        alarm_status = cloudwatch.AlarmStatusWidget(
            title="Alarms", alarms=list(alarms), width=GRID_WIDTH, height=3
        )
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=self.dashboard_name,
            default_interval=cdk.Duration.hours(3),
            widgets=[
                [header],
                [alarm_status],
                [self._traffic(), self._concurrency(), self._error_rates()],
                [self._latency(), self._compute(spec.vcpus, spec.gpus), self._memory_and_disk(spec.gpus)],
            ],
        )

    def _traffic(self) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Invocations (streams started) per minute",
            left=[
                self._invocation("Invocations", SUM, "Invocations"),
                self._invocation("InvocationsPerInstance", SUM, "Per instance"),
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="count", show_units=False),
            width=GRAPH_WIDTH,
            height=GRAPH_HEIGHT,
        )

    def _concurrency(self) -> cloudwatch.GraphWidget:
        # Streams are long-lived, so open streams per instance says more about load than request counts;
        # it is also the default autoscaling metric.
        return cloudwatch.GraphWidget(
            title="Concurrent streams per instance",
            left=[
                # The metric reference documents Min and Max for it (no Average).
                self._invocation("ConcurrentRequestsPerModel", MAXIMUM, "Maximum"),
                self._invocation("ConcurrentRequestsPerModel", MINIMUM, "Minimum"),
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="streams", show_units=False),
            width=GRAPH_WIDTH,
            height=GRAPH_HEIGHT,
        )

    def _error_rates(self) -> cloudwatch.GraphWidget:
        rates = (
            ("Invocation5XXErrors", "5XX"),
            ("Invocation4XXErrors", "4XX"),
            ("InvocationModelErrors", "Model errors"),
        )
        return cloudwatch.GraphWidget(
            title="Error rate (% of requests)",
            left=[
                self._scaled(self._invocation(metric_name, AVERAGE, label), "100 * {m}", label)
                for metric_name, label in rates
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="%", show_units=False),
            width=GRAPH_WIDTH,
            height=GRAPH_HEIGHT,
        )

    def _latency(self) -> cloudwatch.GraphWidget:
        latencies = [("ModelLatency", stat, f"Model {short}") for stat, short in LATENCY_STATISTICS]
        latencies += [
            ("OverheadLatency", "Average", "Overhead avg"),
            (FIRST_CHUNK_LATENCY_METRIC, "Average", "First chunk avg"),
        ]
        to_ms = f"{{m}} / {MICROSECONDS_PER_MILLISECOND}"
        return cloudwatch.GraphWidget(
            title="Latency (ms)",
            left=[
                self._scaled(self._invocation(metric_name, statistic, label), to_ms, label)
                for metric_name, statistic, label in latencies
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="ms", show_units=False),
            width=GRAPH_WIDTH,
            height=GRAPH_HEIGHT,
        )

    def _compute(self, vcpus: int, gpus: int) -> cloudwatch.GraphWidget:
        series = [self._per_device("CPUUtilization", AVERAGE, "CPU", vcpus)]
        if gpus:
            series.append(self._per_device("GPUUtilization", AVERAGE, "GPU", gpus))
        return self._percent_graph("CPU and GPU utilization (% of instance, average over instances)", series)

    def _memory_and_disk(self, gpus: int) -> cloudwatch.GraphWidget:
        series: list[cloudwatch.IMetric] = [
            self._instance("MemoryUtilization", MAXIMUM, "Memory"),
            self._instance("DiskUtilization", MAXIMUM, "Disk"),
        ]
        if gpus:
            series.append(self._per_device("GPUMemoryUtilization", MAXIMUM, "GPU memory", gpus))
        return self._percent_graph("Memory, GPU memory and disk (% of the fullest instance)", series)

    def _per_device(self, metric_name: str, statistic: str, label: str, devices: int) -> cloudwatch.IMetric:
        """A utilization summed over `devices` (0-100 x N), shown as percent of the whole instance."""
        return self._scaled(self._instance(metric_name, statistic, label), f"{{m}} / {devices}", label)

    @staticmethod
    def _percent_graph(title: str, series: Sequence[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            left=list(series),
            left_y_axis=cloudwatch.YAxisProps(min=0, max=100, label="%", show_units=False),
            width=GRAPH_WIDTH,
            height=GRAPH_HEIGHT,
        )

    def _invocation(self, metric_name: str, statistic: str, label: str) -> cloudwatch.Metric:
        metric = self._metrics.invocation(metric_name, statistic=statistic, period=GRAPH_PERIOD)
        return metric.with_(label=label)

    def _instance(self, metric_name: str, statistic: str, label: str) -> cloudwatch.Metric:
        return self._metrics.instance(metric_name, statistic=statistic, period=GRAPH_PERIOD).with_(
            label=label
        )

    @staticmethod
    def _scaled(metric: cloudwatch.Metric, expression: str, label: str) -> cloudwatch.MathExpression:
        """`expression` over one metric written `{m}`, e.g. "{m} / 1000" to turn µs into ms.

        Metric ids must be unique within a graph, so the id is derived from the label.
        """
        metric_id = "m" + "".join(ch for ch in label.lower() if ch.isalnum())
        return cloudwatch.MathExpression(
            expression=expression.format(m=metric_id),
            using_metrics={metric_id: metric},
            label=label,
            period=GRAPH_PERIOD,
        )
