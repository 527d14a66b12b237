"""The endpoint: an endpoint config (immutable, so never named by us) and the endpoint, named stably."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

# Actions a client needs to stream to the endpoint. Which one IAM checks for
# InvokeEndpointWithBidirectionalStream is not documented yet; IAM accepts both names, and granting
# only one risks an AccessDenied that rolls the deployment back (contract notes, open question 6).
INVOKE_ACTIONS = ("sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithBidirectionalStream")


class StreamingEndpoint(Construct):
    """A real-time endpoint with one production variant serving ``model_name``.

    ``deployment_config`` (guardrails: blue/green or rolling, auto-rollback alarms) applies to updates;
    ``retain_variant_properties`` keeps a scaled instance count across updates.
    Exposes ``endpoint_name`` (a plain string, known at synth), ``endpoint_arn``, ``variant_name``,
    ``endpoint_config`` and ``endpoint``; ``grant_invoke`` lets a principal stream to this endpoint only,
    ``grant_describe`` lets it read which endpoint config the endpoint serves.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        model_name: str,
        variant_name: str,
        instance_type: str,
        instance_count: int,
        volume_size_gb: int | None,
        container_startup_health_check_timeout_seconds: int,
        model_data_download_timeout_seconds: int,
        inference_ami_version: str | None,
        kms_key_arn: str | None,
        deployment_config: sagemaker.CfnEndpoint.DeploymentConfigProperty | None = None,
        retain_variant_properties: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        # No endpoint_config_name: every change replaces the config, which a fixed name would block.
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=variant_name,
                    model_name=model_name,
                    instance_type=instance_type,
                    initial_instance_count=instance_count,
                    initial_variant_weight=1.0,
                    volume_size_in_gb=volume_size_gb,
                    container_startup_health_check_timeout_in_seconds=(
                        container_startup_health_check_timeout_seconds
                    ),
                    model_data_download_timeout_in_seconds=model_data_download_timeout_seconds,
                    inference_ami_version=inference_ami_version,
                )
            ],
            kms_key_id=kms_key_arn,
        )
        # A fixed endpoint name is safe: a new config updates the endpoint in place, never replaces it.
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            deployment_config=deployment_config,
            # With autoscaling, keep the instance count (and weight) the variant has scaled to, instead
            # of resetting it to the config's initial count on every update (scaling then corrects it).
            retain_all_variant_properties=retain_variant_properties or None,
        )
        self.endpoint_name = endpoint_name
        self.endpoint_arn: str = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN
        self.variant_name = variant_name

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` open streams to (and invoke) this endpoint and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(INVOKE_ACTIONS), resource_arns=[self.endpoint_arn]
        )

    def grant_describe(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` describe this endpoint (and no other)."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:DescribeEndpoint"], resource_arns=[self.endpoint_arn]
        )
