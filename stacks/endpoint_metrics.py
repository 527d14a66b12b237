"""The CloudWatch metrics of one SageMaker endpoint variant, shared by the alarms, dashboard and scaling.

Units as SageMaker publishes them: latencies in microseconds, `Invocation*Errors` as 1 per failed request
and 0 per good one (so their Average is the error rate), CPU/GPU/GPU-memory utilization summed over the
instance's devices (0-100 x N).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

# Invocation metrics, one data point per request or per minute.
SAGEMAKER_NAMESPACE: Final = "AWS/SageMaker"
# Per-instance resource metrics published by the SageMaker host agent.
ENDPOINT_INSTANCE_NAMESPACE: Final = "/aws/sagemaker/Endpoints"
# Streaming-only metric (time from stream start to first chunk sent, in µs). It is named in third-party
# observability guides, not in the SageMaker metric reference; the alarm on it is opt-in for that reason.
FIRST_CHUNK_LATENCY_METRIC: Final = "FirstChunkLatency"
MICROSECONDS_PER_MILLISECOND: Final = 1000
# CloudWatch's statistic names, read from aws-cdk-lib once: each read of a jsii constant is a round trip
# to node, and a stack's alarms, dashboard and scaling name a statistic about 25 times.
AVERAGE: Final[str] = cloudwatch.Stats.AVERAGE
SUM: Final[str] = cloudwatch.Stats.SUM
MAXIMUM: Final[str] = cloudwatch.Stats.MAXIMUM
MINIMUM: Final[str] = cloudwatch.Stats.MINIMUM
# The statistics the SageMaker metric reference ("Amazon SageMaker AI metrics in Amazon CloudWatch",
# endpoint invocation metrics; the same rows in "Monitor asynchronous endpoint") documents per metric:
# Invocation4XX/5XXErrors "Valid statistics: Average, Sum"; Invocations and InvocationsPerInstance
# "Sum"; ModelLatency and OverheadLatency "Average, Sum, Min, Max, Sample Count" (no percentiles);
# ConcurrentRequestsPerModel "Min, Max". Not in the pages read here, so treated like their siblings:
# InvocationModelErrors (like Invocation5XXErrors) and FirstChunkLatency (like ModelLatency). The
# /aws/sagemaker/Endpoints utilization metrics list units only, so any statistic is valid for them.
_LATENCY_STATISTICS: Final = frozenset({"Average", "Sum", "Minimum", "Maximum", "SampleCount"})
DOCUMENTED_STATISTICS: Final[dict[str, frozenset[str]]] = {
    "Invocation4XXErrors": frozenset({"Average", "Sum"}),
    "Invocation5XXErrors": frozenset({"Average", "Sum"}),
    "InvocationModelErrors": frozenset({"Average", "Sum"}),
    "Invocations": frozenset({"Sum"}),
    "InvocationsPerInstance": frozenset({"Sum"}),
    "ModelLatency": _LATENCY_STATISTICS,
    "OverheadLatency": _LATENCY_STATISTICS,
    FIRST_CHUNK_LATENCY_METRIC: _LATENCY_STATISTICS,
    "ConcurrentRequestsPerModel": frozenset({"Minimum", "Maximum"}),
}
# SageMaker names (endpoint, variant; CreateEndpoint API): alphanumerics and hyphens, 1-63 characters.
SAGEMAKER_NAME_PATTERN: Final = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def validate_endpoint_name(endpoint_name: str) -> None:
    """Refuse tokens (they would tie alarms to the endpoint resource) and names SageMaker rejects."""
    if cdk.Token.is_unresolved(endpoint_name):
        raise ValueError(
            "endpoint_name is a token: it must be a plain string known at synth, because alarm names and "
            "the endpoint's rollback configuration are derived from it (a token creates a dependency cycle)"
        )
    if not SAGEMAKER_NAME_PATTERN.fullmatch(endpoint_name):
        raise ValueError(
            f"endpoint_name={endpoint_name!r}: must be 1-63 letters, digits or hyphens, "
            "starting and ending with a letter or digit"
        )


@dataclass(frozen=True)
class EndpointMetrics:
    """The CloudWatch metrics of one endpoint variant, with the right namespace and dimensions.

    With ``endpoint_config_name`` the metrics are those of one fleet: the deployment-guardrails guide
    ("Monitor model latency on the new fleet") says SageMaker publishes the AWS/SageMaker invocation
    metrics "with the dimension EndpointConfigName:{New-Ep-Config} after the new fleet starts receiving
    traffic", so an alarm with it watches the new fleet only.
    """

    endpoint_name: str
    variant_name: str
    endpoint_config_name: str | None = None

    def invocation(self, metric_name: str, *, statistic: str, period: cdk.Duration) -> cloudwatch.Metric:
        """A metric in AWS/SageMaker (requests, errors, latencies in µs, concurrency).

        Only with a statistic the SageMaker metric reference documents for it (``DOCUMENTED_STATISTICS``).
        """
        allowed = DOCUMENTED_STATISTICS.get(metric_name)
        if allowed is None:
            raise ValueError(f"{metric_name}: not an AWS/SageMaker invocation metric this app knows")
        if statistic not in allowed:
            raise ValueError(
                f"{metric_name} with statistic {statistic!r}: the SageMaker metric reference documents only "
                f"{', '.join(sorted(allowed))} for it"
            )
        return self._metric(SAGEMAKER_NAMESPACE, metric_name, statistic=statistic, period=period)

    def instance(self, metric_name: str, *, statistic: str, period: cdk.Duration) -> cloudwatch.Metric:
        """A per-instance resource metric in /aws/sagemaker/Endpoints (utilizations in %)."""
        return self._metric(ENDPOINT_INSTANCE_NAMESPACE, metric_name, statistic=statistic, period=period)

    def _metric(
        self, namespace: str, metric_name: str, *, statistic: str, period: cdk.Duration
    ) -> cloudwatch.Metric:
        dimensions = {"EndpointName": self.endpoint_name, "VariantName": self.variant_name}
        if self.endpoint_config_name is not None:
            dimensions["EndpointConfigName"] = self.endpoint_config_name
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric_name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
        )
