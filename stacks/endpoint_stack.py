"""The one deployable unit: a SageMaker endpoint with bidirectional streaming, composed from constructs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.deployment_guardrails import build_deployment_guardrails
from stacks.endpoint import StreamingEndpoint
from stacks.model import StreamingModel
from stacks.monitoring import Monitoring
from stacks.scaling import EndpointScaling
from stacks.settings import Settings
from stacks.smoke_test.canary import StreamingCanary
from stacks.smoke_test.check import SmokeCheckTarget
from stacks.smoke_test.infrastructure import SmokeTest

CONTAINER_DIR: Final = Path(__file__).resolve().parents[1] / "container"
# Only what the endpoint's storage volume encryption needs; no kms:* and no other key.
VOLUME_KEY_ACTIONS: Final = ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey")


class EndpointStack(cdk.Stack):
    """Image -> role -> model -> endpoint config -> endpoint -> alarms, dashboard, scaling -> smoke test.

    Exposes ``model``, ``endpoint``, ``monitoring``, ``scaling``, ``smoke_test`` and ``canary`` (``None``
    when off).

    No dependency cycle: the alarms and the scalable target name the endpoint by its plain name, and the
    endpoint names its rollback alarms by their plain names; explicit dependencies set the order
    (alarms -> endpoint -> scalable target).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        container_directory: Path = CONTAINER_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        endpoint_name = settings.resolved_endpoint_name
        smoke_target = SmokeCheckTarget.from_settings(settings)

        self.model = StreamingModel(
            self,
            "Model",
            endpoint_name=endpoint_name,
            image_directory=container_directory,
            model_package_arn=settings.model_package_arn,
            network_isolation=settings.resolved_network_isolation,
            vpc_subnet_ids=settings.vpc_subnet_ids,
            vpc_security_group_ids=settings.vpc_security_group_ids,
            run_as_user=settings.resolved_container_user,
        )
        # The endpoint first: the rollback alarms watch the fleet of its endpoint config (by name), and
        # the deployment config that names those alarms is set on the endpoint once they exist.
        self.endpoint = StreamingEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            model_name=self.model.model_name,
            variant_name=settings.variant_name,
            instance_type=settings.instance_type,
            instance_count=settings.instance_count,
            volume_size_gb=settings.volume_size_gb,
            container_startup_health_check_timeout_seconds=settings.container_startup_health_check_timeout_seconds,
            model_data_download_timeout_seconds=settings.model_data_download_timeout_seconds,
            inference_ami_version=settings.inference_ami_version,
            kms_key_arn=settings.kms_key_arn,
            retain_variant_properties=settings.scaling_enabled,
        )
        self.canary: StreamingCanary | None = None
        if settings.canary:
            self.canary = StreamingCanary(
                self,
                "Canary",
                target=smoke_target,
                budget_seconds=settings.smoke_budget_seconds,
                rate_minutes=settings.canary_rate_minutes,
            )
            self._grant_streaming(self.canary.role, self.canary.function)
            # The schedule starts once the endpoint exists (and ends before it is deleted).
            self.canary.rule.node.add_dependency(self.endpoint.endpoint)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            endpoint_name=endpoint_name,
            variant_name=settings.variant_name,
            instance_type=settings.instance_type,
            settings=settings.alarms,
            email_addresses=settings.alarm_email_addresses,
            # The config being deployed: its fleet is the new one during an update. A package's endpoint
            # has no deployment config to name rollback alarms in, so it gets no new-fleet copies.
            deployed_config_name=(
                None
                if settings.uses_model_package
                else self.endpoint.endpoint_config.attr_endpoint_config_name
            ),
            extra_alarms=[] if self.canary is None else [self.canary.alarm, self.canary.stopped_alarm],
        )
        rollback_alarm_names = self.monitoring.rollback_alarm_names
        if self.canary is not None:
            self.monitoring.page_on(self.canary.alarm)
            # Pages only: see StreamingCanary for why a silent canary must not roll an update back.
            self.monitoring.page_on(self.canary.stopped_alarm)
            rollback_alarm_names += (self.canary.alarm_name,)
        # SageMaker applies no deployment guardrails to Marketplace containers (deployment-guardrails
        # "Exclusions"): a package's endpoint gets no deployment config, which is that same fallback.
        if not settings.uses_model_package:
            guardrails = build_deployment_guardrails(
                self,
                settings=settings.deployment,
                rollback_alarm_names=rollback_alarm_names,
                instance_count=settings.instance_count,
                scaling_bounds=(
                    (settings.scaling.scaling_min_instances, settings.scaling.scaling_max_instances)
                    if settings.scaling_enabled
                    else None
                ),
            )
            self.endpoint.endpoint.deployment_config = guardrails.deployment_config
            # SageMaker reads the rollback alarms with the execution role during an update: those only.
            self.model.role.add_to_principal_policy(guardrails.describe_alarms_statement)
        # The rollback alarms must exist before the endpoint (and any update of it) names them.
        self.endpoint.endpoint.node.add_dependency(self.monitoring.alarms)
        if self.canary is not None:
            self.endpoint.endpoint.node.add_dependency(self.canary.alarm)
        if settings.kms_key_arn is not None:
            # CreateEndpointConfig's KmsKeyId docs require the key policy to allow the principal that calls
            # CreateEndpoint/UpdateEndpoint, which here is CloudFormation's execution role from the CDK
            # bootstrap; the operator sets that up on the key (see the kms_key_arn setting). The docs do not
            # ask for the model's execution role, but this grant is kept: it is limited to this one key and
            # the four actions EBS volume encryption uses, and a volume SageMaker cannot encrypt only shows
            # up as a failed endpoint mid-deploy. It has no effect unless the key policy delegates to IAM.
            self.model.role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="VolumeKey", actions=list(VOLUME_KEY_ACTIONS), resources=[settings.kms_key_arn]
                )
            )

        self.scaling: EndpointScaling | None = None
        if settings.scaling_enabled:
            self.scaling = EndpointScaling(
                self,
                "Scaling",
                endpoint_name=endpoint_name,
                variant_name=settings.variant_name,
                instance_type=settings.instance_type,
                settings=settings.scaling,
                endpoint=self.endpoint.endpoint,
            )

        self.smoke_test: SmokeTest | None = None
        if settings.smoke_test:
            self.smoke_test = SmokeTest(
                self,
                "SmokeTest",
                target=smoke_target,
                budget_seconds=settings.smoke_budget_seconds,
                deployment_fingerprint=self._deployment_fingerprint(settings),
                endpoint_config_name=self.endpoint.endpoint_config.attr_endpoint_config_name,
                execute_after=[self.endpoint.endpoint],
            )
            self._grant_streaming(self.smoke_test.role, self.smoke_test.function)
            self.endpoint.grant_describe(self.smoke_test.function)

        self._add_outputs(smoke_target)

    def _grant_streaming(self, role: iam.Role, function: iam.IGrantable) -> None:
        """Let ``function`` stream to this endpoint only."""
        self.endpoint.grant_invoke(function)
        # cfn-lint 1.58's IAM action list predates InvokeEndpointWithBidirectionalStream (W3037);
        # silence that one rule on this one policy, not for the whole template.
        policy = role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, cdk.CfnResource)
        policy.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})

    def _deployment_fingerprint(self, settings: Settings) -> str:
        """A synth-time hash of what the smoke test checks: image (or package), model, endpoint config.

        The trigger re-runs when its function version changes; this value in the function's
        environment makes the version change whenever any of these do.
        """
        image = self.model.image.asset_hash if self.model.image is not None else settings.model_package_arn
        # _cfn_properties is the L1's own property bag (jsii's name for the protected cfnProperties):
        # every property, including ones added later, without listing them here.
        inputs = {
            "image": image,
            "model": self.resolve(self.model.model._cfn_properties),
            "endpointConfig": self.resolve(self.endpoint.endpoint_config._cfn_properties),
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def _add_outputs(self, smoke_target: SmokeCheckTarget) -> None:
        endpoint_name = self.endpoint.endpoint_name
        cdk.CfnOutput(self, "EndpointName", value=endpoint_name, description="SageMaker endpoint name")
        cdk.CfnOutput(
            self, "EndpointArn", value=self.endpoint.endpoint_arn, description="SageMaker endpoint ARN"
        )
        cdk.CfnOutput(self, "Region", value=self.region, description="Region of the endpoint")
        # The same path and query the smoke test uses, with input that mode's model answers.
        cdk.CfnOutput(
            self,
            "InvokeCommand",
            value=cdk.Fn.join(" ", smoke_target.invoke_command(self.region)),
            description="Stream to the endpoint with the bidistream CLI (pip install -e . first)",
        )
