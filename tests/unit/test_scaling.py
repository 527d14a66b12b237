"""EndpointScaling: the scalable target, the target-tracking policy per metric, cooldowns, ordering after the
endpoint, and settings validation."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.assertions import Template

from stacks.endpoint_metrics import ENDPOINT_INSTANCE_NAMESPACE
from stacks.scaling import DEFAULT_TARGETS, EndpointScaling, ScalingMetric, ScalingSettings
from tests.unit.operations_support import (
    ACCOUNT,
    ENDPOINT_NAME,
    MULTI_GPU_GPUS,
    MULTI_GPU_INSTANCE,
    VARIANT_NAME,
    bare_stack,
    resources_of,
)


def _build(
    settings: ScalingSettings, *, with_endpoint: bool = True, instance_type: str = MULTI_GPU_INSTANCE
) -> Template:
    stack = bare_stack()
    endpoint = (
        sagemaker.CfnEndpoint(stack, "Endpoint", endpoint_config_name="config", endpoint_name=ENDPOINT_NAME)
        if with_endpoint
        else None
    )
    EndpointScaling(
        stack,
        "Scaling",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=instance_type,
        settings=settings,
        endpoint=endpoint,
    )
    return Template.from_stack(stack)


def _only(template: Template, resource_type: str) -> dict[str, Any]:
    found = resources_of(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


@pytest.fixture(scope="module")
def default_template() -> Template:
    return _build(ScalingSettings())


def test_scalable_target_is_the_variants_instance_count(default_template: Template) -> None:
    target = _only(default_template, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ServiceNamespace"] == "sagemaker"
    assert props["ResourceId"] == f"endpoint/{ENDPOINT_NAME}/variant/{VARIANT_NAME}"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (1, 4)


def test_target_uses_the_sagemaker_service_linked_role_not_an_empty_role(default_template: Template) -> None:
    props = _only(default_template, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    role_arn = props["RoleARN"]["Fn::Join"][1]
    assert role_arn[-1] == (
        f":iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    default_template.resource_count_is("AWS::IAM::Role", 0)


def test_target_waits_for_the_endpoint(default_template: Template) -> None:
    target = _only(default_template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["DependsOn"] == ["Endpoint"]


def test_without_an_endpoint_argument_there_is_no_dependency() -> None:
    target = _only(
        _build(ScalingSettings(), with_endpoint=False), "AWS::ApplicationAutoScaling::ScalableTarget"
    )
    assert "DependsOn" not in target


def test_default_policy_tracks_concurrent_streams_with_a_long_scale_in_cooldown(
    default_template: Template,
) -> None:
    policy = _only(default_template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    target_id = next(iter(resources_of(default_template, "AWS::ApplicationAutoScaling::ScalableTarget")))
    props = policy["Properties"]
    assert props["PolicyType"] == "TargetTrackingScaling"
    assert props["ScalingTargetId"] == {"Ref": target_id}
    config = props["TargetTrackingScalingPolicyConfiguration"]
    assert config == {
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"
        },
        "TargetValue": DEFAULT_TARGETS[ScalingMetric.CONCURRENT_REQUESTS_PER_MODEL],
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 1800,
    }


def test_invocations_per_instance_alternative() -> None:
    template = _build(
        ScalingSettings(
            scaling_metric="invocations_per_instance",
            scaling_target_value=12.5,
            scaling_min_instances=2,
            scaling_max_instances=6,
            scaling_scale_out_cooldown_seconds=120,
            scaling_scale_in_cooldown_seconds=900,
        )
    )
    target = _only(template, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    config = _only(template, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"][
        "TargetTrackingScalingPolicyConfiguration"
    ]
    assert config == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "TargetValue": 12.5,
        "ScaleOutCooldown": 120,
        "ScaleInCooldown": 900,
    }


def test_gpu_utilization_alternative_tracks_a_custom_metric_normalised_per_gpu() -> None:
    template = _build(ScalingSettings(scaling_metric="gpu_utilization", scaling_target_value=50.0))
    config = _only(template, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"][
        "TargetTrackingScalingPolicyConfiguration"
    ]
    assert config["CustomizedMetricSpecification"] == {
        "Namespace": ENDPOINT_INSTANCE_NAMESPACE,
        "MetricName": "GPUUtilization",
        "Dimensions": [
            {"Name": "EndpointName", "Value": ENDPOINT_NAME},
            {"Name": "VariantName", "Value": VARIANT_NAME},
        ],
        "Statistic": "Average",
    }
    # GPUUtilization is summed over the instance's 4 GPUs.
    assert config["TargetValue"] == 50.0 * MULTI_GPU_GPUS


def test_gpu_metric_on_an_instance_without_gpus_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"scaling_metric='gpu_utilization': ml\.c5\.xlarge has no NVIDIA GPU"
    ):
        _build(ScalingSettings(scaling_metric="gpu_utilization"), instance_type="ml.c5.xlarge")


def test_endpoint_name_token_is_refused() -> None:
    with pytest.raises(ValueError, match="endpoint_name is a token"):
        EndpointScaling(
            bare_stack(),
            "Scaling",
            endpoint_name=cdk.Fn.ref("Endpoint"),
            variant_name=VARIANT_NAME,
            instance_type=MULTI_GPU_INSTANCE,
            settings=ScalingSettings(),
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scaling_min_instances": 0}, r"scaling_min_instances=0: must be a whole number from 1 to 100"),
        (
            {"scaling_min_instances": 3, "scaling_max_instances": 2},
            r"scaling_max_instances=2: must be at least scaling_min_instances \(3\) and at most 100",
        ),
        ({"scaling_max_instances": 1000}, r"scaling_max_instances=1000: .*at most 100"),
        ({"scaling_metric": "cpu"}, r"scaling_metric='cpu': must be one of concurrent_requests_per_model, "),
        ({"scaling_target_value": 0.0}, r"scaling_target_value=0\.0: must be a positive number"),
        (
            {"scaling_metric": "gpu_utilization", "scaling_target_value": 120.0},
            r"scaling_target_value=120\.0: must be a percentage above 0 and at most 100 for gpu_utilization",
        ),
        (
            {"scaling_scale_in_cooldown_seconds": -1},
            r"scaling_scale_in_cooldown_seconds=-1: must be whole seconds",
        ),
        ({"scaling_scale_out_cooldown_seconds": 90_000}, r"scaling_scale_out_cooldown_seconds=90000"),
    ],
)
def test_bad_scaling_settings_are_refused_with_setting_value_and_allowed(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ScalingSettings(**overrides)


def test_target_value_defaults_follow_the_metric() -> None:
    for metric in ScalingMetric:
        assert ScalingSettings(scaling_metric=metric.value).target_value == DEFAULT_TARGETS[metric]
    assert ScalingSettings(scaling_target_value=7.0).target_value == 7.0


def test_scaling_settings_of_the_wrong_type_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"scaling_max_instances='4': must be int, not str"):
        ScalingSettings(scaling_max_instances="4")  # type: ignore[arg-type]
