"""Endpoint alarms: errors seen by clients, model errors, and GPU memory pressure.

Metrics come from SageMaker with the ``EndpointName`` and ``VariantName`` dimensions, one data point
a minute. ``Invocation4XXErrors``/``Invocation5XXErrors`` are 1 per failed request and 0 otherwise,
so their Average is an error rate. ``GPUMemoryUtilization`` is a percentage summed over the
instance's GPUs (0-100 x GPUs).
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

INVOCATION_METRICS_NAMESPACE: Final = "AWS/SageMaker"
INSTANCE_METRICS_NAMESPACE: Final = "/aws/sagemaker/Endpoints"
METRIC_PERIOD: Final = cdk.Duration.minutes(1)


class Monitoring(Construct):
    """CloudWatch alarms on one endpoint variant.

    Exposes ``alarms``: alarm purpose (``"5xx-error-rate"``, ``"4xx-error-rate"``, ``"model-errors"``,
    ``"gpu-memory"``) to the alarm, for actions and auto-rollback wiring in the stack.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        error_rate_5xx: float,
        error_rate_4xx: float,
        model_errors_per_minute: int,
        gpu_memory_percent: float | None,
        evaluation_minutes: int,
        datapoints_to_alarm: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self._endpoint_name = endpoint_name
        self._dimensions = {"EndpointName": endpoint_name, "VariantName": variant_name}
        self._evaluation_minutes = evaluation_minutes
        self._datapoints_to_alarm = datapoints_to_alarm
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        self._add_alarm(
            "5xx-error-rate",
            metric=self._metric(INVOCATION_METRICS_NAMESPACE, "Invocation5XXErrors", "Average"),
            threshold=error_rate_5xx,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=f"More than {error_rate_5xx:.0%} of requests to {endpoint_name} fail with 5XX",
        )
        self._add_alarm(
            "4xx-error-rate",
            metric=self._metric(INVOCATION_METRICS_NAMESPACE, "Invocation4XXErrors", "Average"),
            threshold=error_rate_4xx,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=(
                f"More than {error_rate_4xx:.0%} of requests to {endpoint_name} fail with 4XX "
                "(a rejected stream upgrade shows up here)"
            ),
        )
        self._add_alarm(
            "model-errors",
            metric=self._metric(INVOCATION_METRICS_NAMESPACE, "InvocationModelErrors", "Sum"),
            threshold=model_errors_per_minute,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description=f"The model of {endpoint_name} fails {model_errors_per_minute}+ requests a minute",
        )
        if gpu_memory_percent is not None:
            self._add_alarm(
                "gpu-memory",
                metric=self._metric(INSTANCE_METRICS_NAMESPACE, "GPUMemoryUtilization", "Maximum"),
                threshold=gpu_memory_percent,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description=f"GPU memory of an instance of {endpoint_name} is above {gpu_memory_percent}%",
            )

    def _metric(self, namespace: str, metric_name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric_name,
            dimensions_map=self._dimensions,
            statistic=statistic,
            period=METRIC_PERIOD,
        )

    def _add_alarm(
        self,
        purpose: str,
        *,
        metric: cloudwatch.Metric,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        description: str,
    ) -> None:
        self.alarms[purpose] = cloudwatch.Alarm(
            self,
            "".join(word.capitalize() for word in purpose.split("-")) + "Alarm",
            alarm_name=f"{self._endpoint_name}-{purpose}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=self._evaluation_minutes,
            datapoints_to_alarm=self._datapoints_to_alarm,
            # No traffic is not an outage: a quiet endpoint emits no invocation data points.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
