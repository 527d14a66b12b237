"""Application Auto Scaling of the endpoint variant's instance count, tuned for long-lived streams.

Trade-offs (the README's Operations section repeats them):

- **Metric.** A bidirectional stream is one invocation that lasts up to 30 minutes, so invocations per
  minute say little about load: 10 new streams a minute can mean 10 or 300 open ones. The default tracks
  `ConcurrentRequestsPerModel` (open requests per instance, published every 10 seconds, predefined metric
  `SageMakerVariantConcurrentRequestsPerModelHighResolution`), which is the load a streaming model feels.
  `invocations_per_instance` suits short requests; `gpu_utilization` suits a model whose cost per stream
  varies a lot, but GPU utilization lags the load and reads 0 on a warm idle model.
- **Scale-out** is quick (default 60 s cooldown): capacity takes minutes to arrive (instance start, image
  pull, health check), and new streams meanwhile pile onto the busy instances.
- **Scale-in** is slow (default 30 minutes, the longest a stream lives): removing an instance ends the
  streams on it, and a short cooldown would remove capacity between two bursts of stream starts.
  The price is paying for idle instances for up to half an hour after a peak.
- **Target value** is the number of open streams per instance you want on average (default 4); set it from a
  load test well below the container's per-instance session limit, so scale-out starts before sessions are
  refused.
- **Updates.** With a scalable target registered, SageMaker refuses an endpoint update that changes the
  variant's instance type; such a change needs the scaling removed first (deploy without it, then with it).
  With scaling on, the stack sets `RetainAllVariantProperties` on the endpoint, so a deploy keeps the
  instance count the variant has scaled to instead of resetting it to `instance_count` (with one variant
  and no data capture, the count is the only variant property that matters); with scaling off the
  endpoint config's count applies on every update.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.endpoint_metrics import AVERAGE, EndpointMetrics, validate_endpoint_name
from stacks.instance_types import instance_spec
from stacks.setting_types import check_setting_types

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SAGEMAKER_SCALING_SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
# Account default quota for instances per endpoint is far lower; this only catches typos like 1000.
MAX_INSTANCES = 100
MAX_COOLDOWN_SECONDS = 86_400
GPU_METRIC_PERIOD = cdk.Duration.minutes(1)


class ScalingMetric(StrEnum):
    """What target tracking keeps at the target value."""

    CONCURRENT_REQUESTS_PER_MODEL = "concurrent_requests_per_model"  # open streams per instance (10 s)
    INVOCATIONS_PER_INSTANCE = "invocations_per_instance"  # requests per instance per minute
    GPU_UTILIZATION = "gpu_utilization"  # percent of the instance's GPUs, averaged over instances


PREDEFINED_METRICS: dict[ScalingMetric, appscaling.PredefinedMetric] = {
    ScalingMetric.CONCURRENT_REQUESTS_PER_MODEL: (
        appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION
    ),
    ScalingMetric.INVOCATIONS_PER_INSTANCE: (
        appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE
    ),
}

# Default target per metric, in the unit of the metric (streams, invocations per minute, percent).
DEFAULT_TARGETS: dict[ScalingMetric, float] = {
    ScalingMetric.CONCURRENT_REQUESTS_PER_MODEL: 4.0,
    ScalingMetric.INVOCATIONS_PER_INSTANCE: 30.0,
    ScalingMetric.GPU_UTILIZATION: 60.0,
}


@dataclass(frozen=True)
class ScalingSettings:
    """Instance-count bounds and target tracking; field names are the cdk.json keys."""

    scaling_min_instances: int = 1
    scaling_max_instances: int = 4
    scaling_metric: str = ScalingMetric.CONCURRENT_REQUESTS_PER_MODEL.value
    # In the metric's unit; None takes DEFAULT_TARGETS[scaling_metric].
    scaling_target_value: float | None = None
    scaling_scale_out_cooldown_seconds: int = 60
    scaling_scale_in_cooldown_seconds: int = 1800  # the longest a stream lives

    def __post_init__(self) -> None:
        check_setting_types(self)
        if not 1 <= self.scaling_min_instances <= MAX_INSTANCES:
            raise ValueError(
                f"scaling_min_instances={self.scaling_min_instances!r}: must be a whole number from 1 to "
                f"{MAX_INSTANCES} (an endpoint variant cannot scale to zero instances)"
            )
        if not self.scaling_min_instances <= self.scaling_max_instances <= MAX_INSTANCES:
            raise ValueError(
                f"scaling_max_instances={self.scaling_max_instances!r}: must be at least "
                f"scaling_min_instances ({self.scaling_min_instances}) and at most {MAX_INSTANCES}"
            )
        allowed = [metric.value for metric in ScalingMetric]
        if self.scaling_metric not in allowed:
            raise ValueError(f"scaling_metric={self.scaling_metric!r}: must be one of {', '.join(allowed)}")
        target = self.scaling_target_value
        if target is not None:
            upper = 100.0 if self.metric is ScalingMetric.GPU_UTILIZATION else float("inf")
            if not 0 < target <= upper:
                what = "a percentage above 0 and at most 100" if upper == 100 else "a positive number"
                raise ValueError(f"scaling_target_value={target!r}: must be {what} for {self.scaling_metric}")
        for name in ("scaling_scale_out_cooldown_seconds", "scaling_scale_in_cooldown_seconds"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_COOLDOWN_SECONDS:
                raise ValueError(f"{name}={value!r}: must be whole seconds from 0 to {MAX_COOLDOWN_SECONDS}")

    @property
    def metric(self) -> ScalingMetric:
        """The scaling metric as an enum."""
        return ScalingMetric(self.scaling_metric)

    @property
    def target_value(self) -> float:
        """The configured target, or the metric's default."""
        if self.scaling_target_value is not None:
            return self.scaling_target_value
        return DEFAULT_TARGETS[self.metric]


class EndpointScaling(Construct):
    """A scalable target on the variant's instance count (`self.target`) and its policy (`self.policy`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        instance_type: str,
        settings: ScalingSettings,
        endpoint: sagemaker.CfnEndpoint | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        validate_endpoint_name(endpoint_name)
        spec = instance_spec(instance_type)
        if settings.metric is ScalingMetric.GPU_UTILIZATION and spec.gpus == 0:
            raise ValueError(
                f"scaling_metric={settings.scaling_metric!r}: {instance_type} has no NVIDIA GPU to measure; "
                f"use {ScalingMetric.CONCURRENT_REQUESTS_PER_MODEL.value} or "
                f"{ScalingMetric.INVOCATIONS_PER_INSTANCE.value}"
            )

        # Without a role CDK would create an empty role that cannot update the endpoint; Application Auto
        # Scaling's service-linked role for SageMaker endpoints has exactly the rights it needs and is
        # created by the service on first registration.
        service_linked_role = iam.Role.from_role_arn(
            self,
            "ServiceLinkedRole",
            cdk.Stack.of(self).format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name=SAGEMAKER_SCALING_SERVICE_LINKED_ROLE,
            ),
        )
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint_name}/variant/{variant_name}",
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=settings.scaling_min_instances,
            max_capacity=settings.scaling_max_instances,
            role=service_linked_role,
        )
        if endpoint is not None:
            # The target names the endpoint by its plain name, so CloudFormation cannot see the order.
            self.target.node.add_dependency(endpoint)

        predefined_metric = PREDEFINED_METRICS.get(settings.metric)
        custom_metric: cloudwatch.IMetric | None = None
        target_value = settings.target_value
        if settings.metric is ScalingMetric.GPU_UTILIZATION:
            metrics = EndpointMetrics(endpoint_name=endpoint_name, variant_name=variant_name)
            custom_metric = metrics.instance("GPUUtilization", statistic=AVERAGE, period=GPU_METRIC_PERIOD)
            # GPUUtilization is summed over the instance's GPUs (0-100 x N).
            target_value *= spec.gpus

        self.policy = self.target.scale_to_track_metric(
            "TargetTracking",
            target_value=target_value,
            predefined_metric=predefined_metric,
            custom_metric=custom_metric,
            scale_out_cooldown=cdk.Duration.seconds(settings.scaling_scale_out_cooldown_seconds),
            scale_in_cooldown=cdk.Duration.seconds(settings.scaling_scale_in_cooldown_seconds),
        )
