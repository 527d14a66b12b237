"""The endpoint construct: the variant, no hard-coded config name, a stable endpoint name, outputs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from tests.unit.conftest import KMS_KEY_ARN, only_resource, template_of


@pytest.fixture(scope="module")
def default() -> Template:
    return template_of()


@pytest.fixture(scope="module")
def custom() -> Template:
    return template_of(
        {
            # Inferentia: EBS-only (so a KMS key and volume size are allowed) with its own Neuron AMI.
            "instance_type": "ml.inf2.xlarge",
            "instance_count": "2",
            "variant_name": "Blue",
            "volume_size_gb": "64",
            "container_startup_health_check_timeout_seconds": "900",
            "model_data_download_timeout_seconds": "1200",
            "kms_key_arn": KMS_KEY_ARN,
            "endpoint_name": "speech-live",
            "inference_ami_version": "al2-ami-sagemaker-inference-neuron-2",
        }
    )


def test_one_config_and_one_endpoint(default: Template) -> None:
    default.resource_count_is("AWS::SageMaker::Model", 1)
    default.resource_count_is("AWS::SageMaker::EndpointConfig", 1)
    default.resource_count_is("AWS::SageMaker::Endpoint", 1)


def test_endpoint_config_defaults_to_one_gpu_instance(default: Template) -> None:
    model_id, _ = only_resource(default, "AWS::SageMaker::Model")
    default.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": {"Fn::GetAtt": [model_id, "ModelName"]},
                    "InstanceType": "ml.g6.2xlarge",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 600,
                    "ModelDataDownloadTimeoutInSeconds": 600,
                    "InferenceAmiVersion": Match.absent(),
                }
            ],
            "KmsKeyId": Match.absent(),
        },
    )


def test_endpoint_config_is_never_named_so_it_can_be_replaced(default: Template, custom: Template) -> None:
    for template in (default, custom):
        template.has_resource_properties(
            "AWS::SageMaker::EndpointConfig", {"EndpointConfigName": Match.absent()}
        )
        template.has_resource_properties("AWS::SageMaker::Model", {"ModelName": Match.absent()})


def test_endpoint_config_uses_configured_instance_type_count_variant_volume_timeouts_ami_and_key(
    custom: Template,
) -> None:
    custom.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like(
                    {
                        "VariantName": "Blue",
                        "InstanceType": "ml.inf2.xlarge",
                        "InitialInstanceCount": 2,
                        "VolumeSizeInGB": 64,
                        "ContainerStartupHealthCheckTimeoutInSeconds": 900,
                        "ModelDataDownloadTimeoutInSeconds": 1200,
                        "InferenceAmiVersion": "al2-ami-sagemaker-inference-neuron-2",
                    }
                )
            ],
            "KmsKeyId": KMS_KEY_ARN,
        },
    )


def test_default_has_no_volume_size_for_the_nvme_instance(default: Template) -> None:
    default.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {"ProductionVariants": [Match.object_like({"VolumeSizeInGB": Match.absent()})]},
    )


def test_endpoint_name_defaults_to_the_stack_and_follows_the_config(default: Template) -> None:
    config_id, _ = only_resource(default, "AWS::SageMaker::EndpointConfig")
    default.has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {
            "EndpointName": "bidistream",
            "EndpointConfigName": {"Fn::GetAtt": [config_id, "EndpointConfigName"]},
        },
    )


def test_endpoint_name_comes_from_settings(custom: Template) -> None:
    custom.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "speech-live"})


def test_outputs_name_arn_region_and_the_invoke_command(default: Template) -> None:
    endpoint_id, _ = only_resource(default, "AWS::SageMaker::Endpoint")
    default.has_output("EndpointName", {"Value": "bidistream"})
    default.has_output("EndpointArn", {"Value": {"Ref": endpoint_id}})
    default.has_output("Region", {"Value": "eu-west-1"})
    default.has_output(
        "InvokeCommand", {"Value": "bidistream invoke bidistream --region eu-west-1 --text hello"}
    )


def test_invoke_command_for_a_speech_model_streams_the_clip_to_v1_listen() -> None:
    template = template_of({"smoke_mode": "transcribe", "endpoint_name": "speech"})
    template.has_output(
        "InvokeCommand",
        {
            "Value": "bidistream invoke speech --region eu-west-1 --path v1/listen "
            "--audio bidistream/data/speech-sample.wav"
        },
    )


def test_update_timeout_covers_the_largest_fleet_scaling_allows() -> None:
    context = {
        "instance_count": "2",
        "scaling_min_instances": "2",
        "scaling_max_instances": "10",
        "deployment_traffic_shifting": "LINEAR",
        "deployment_step_unit": "INSTANCE_COUNT",
        "deployment_step_size": "1",
        "smoke_test": "false",
    }
    policies = {}
    for scaling in ("true", "false"):
        _, endpoint = only_resource(
            template_of({**context, "scaling_enabled": scaling}), "AWS::SageMaker::Endpoint"
        )
        policies[scaling] = endpoint["Properties"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    # Scaled out to 10, an update takes ten linear steps of 600 s before the 1800 s termination wait.
    assert policies["true"]["MaximumExecutionTimeoutInSeconds"] == 10 * 600 + 1800 + 3600
    # The twin: without scaling the fleet stays at 2 instances, two steps.
    assert policies["false"]["MaximumExecutionTimeoutInSeconds"] == 2 * 600 + 1800 + 3600
