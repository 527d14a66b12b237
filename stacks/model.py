"""The model: the container image asset, the least-privilege execution role, and the SageMaker model.

Two modes, chosen by one setting: our own image built from ``container/`` (bring your own container),
or a Marketplace model package (``ModelPackageName``), which always runs with network isolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks import nag
from stacks.settings import SettingsError

# SageMaker writes an endpoint's container logs to this log group (one stream per instance).
ENDPOINT_LOG_GROUP_PREFIX: Final = "/aws/sagemaker/Endpoints"
# The namespace of the per-instance metrics (CPU, memory, GPU, disk) SageMaker publishes for an endpoint.
ENDPOINT_METRICS_NAMESPACE: Final = "/aws/sagemaker/Endpoints"
# CreateModel rejects an OCI image manifest ("Unsupported manifest media type
# application/vnd.oci.image.manifest.v1+json"), which Docker's containerd image store produces by default.
# Docker's image exporter takes "oci-mediatypes | true,false | ... Use OCI media types in exporter
# manifests" (docs.docker.com/build/exporters/image-registry), so the asset always asks for Docker v2
# schema 2 media types. The CDK CLI passes each entry as `docker build --output=...` and runs the build
# with BUILDX_NO_DEFAULT_ATTESTATIONS=1 ("Docker Build adds provenance attestations by default that
# confuse cdk-assets"), so no provenance attestation turns the push into an OCI image index either.
# `--output` needs BuildKit through the buildx plugin, on the engine's default (`docker` driver) builder
# so the image lands where `docker push` finds it (README, Deploy).
IMAGE_OUTPUTS: Final = ("type=image,oci-mediatypes=false",)
DEFAULT_RUN_AS_USER: Final = "10001:10001"
# The interface a model container in a VPC needs: SageMaker creates and removes its ENIs.
_ENI_DESCRIBE_ACTIONS: Final = (
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)
_ENI_MANAGE_ACTIONS: Final = (
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)


class StreamingModel(Construct):
    """The SageMaker model behind the endpoint, with the role it runs as.

    Exposes ``role`` (grant more to it from the stack), ``model`` (the ``CfnModel``), ``model_name``
    and ``image`` (the image asset, ``None`` in model-package mode).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        image_directory: Path,
        model_package_arn: str | None,
        network_isolation: bool,
        vpc_subnet_ids: Sequence[str],
        vpc_security_group_ids: Sequence[str],
        run_as_user: str = DEFAULT_RUN_AS_USER,
    ) -> None:
        super().__init__(scope, construct_id)
        if model_package_arn is not None and not network_isolation:
            raise ValueError("a Marketplace model package runs only with network isolation")
        stack = cdk.Stack.of(self)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs the model of SageMaker endpoint {endpoint_name}",
        )
        self._allow_endpoint_logs(stack, endpoint_name)
        self._allow_endpoint_metrics()

        self.image: ecr_assets.DockerImageAsset | None = None
        if model_package_arn is None:
            # The asset API has no labels option: the bidirectional-streaming capability label is a
            # LABEL line in container/Dockerfile (a container test reads it).
            self.image = ecr_assets.DockerImageAsset(
                self,
                "Image",
                directory=str(image_directory),
                platform=ecr_assets.Platform.LINUX_AMD64,
                outputs=list(IMAGE_OUTPUTS),
                # The image's user (container/Dockerfile ARG RUN_AS_USER): non-root unless set to 0:0.
                build_args={"RUN_AS_USER": run_as_user},
            )
            self.image.repository.grant_pull(self.role)
            container = sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image.image_uri, mode="SingleModel"
            )
        else:
            self._require_package_region(stack, model_package_arn)
            container = sagemaker.CfnModel.ContainerDefinitionProperty(model_package_name=model_package_arn)

        vpc_config = None
        if vpc_subnet_ids:
            vpc_config = sagemaker.CfnModel.VpcConfigProperty(
                subnets=list(vpc_subnet_ids), security_group_ids=list(vpc_security_group_ids)
            )
            self._allow_vpc_interfaces(stack, vpc_subnet_ids, vpc_security_group_ids)

        # No model_name: CloudFormation replaces a model on most changes, which a fixed name would block.
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=container,
            enable_network_isolation=network_isolation,
            vpc_config=vpc_config,
        )
        # CreateModel checks the role's permissions (the image pull), so its policy must exist first.
        self.model.node.add_dependency(self.role)
        self.model_name: str = self.model.attr_model_name

        # Each '*' below is an action without resource-level permissions; the reason names exactly those.
        unscoped = ["cloudwatch:PutMetricData (limited by a cloudwatch:namespace condition instead)"]
        if self.image is not None:
            unscoped.append("ecr:GetAuthorizationToken (the pull itself is limited to the asset repository)")
        if vpc_subnet_ids:
            unscoped.append("the ec2:Describe* calls SageMaker makes to place the model's network interfaces")
        nag.acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "These actions support no resource-level permissions, so IAM requires '*': "
            + "; ".join(unscoped),
        )

    def _require_package_region(self, stack: cdk.Stack, model_package_arn: str) -> None:
        """A model package lives in one region: CreateModel elsewhere fails mid-deploy, so refuse it first.

        "A model package is specific to the region in which you create it" (SageMaker developer guide,
        "Create a Model Package Resource"); a Marketplace listing publishes one package ARN per region.

        With a known region the check is at synth; an environment-agnostic stack gets a template rule,
        which CloudFormation evaluates "before creating or updating any resources" (template Rules syntax).
        """
        package_region = model_package_arn.split(":")[3]
        if cdk.Token.is_unresolved(stack.region):
            cdk.CfnRule(
                self,
                "ModelPackageRegion",
                assertions=[
                    cdk.CfnRuleAssertion(
                        assert_=cdk.Fn.condition_equals(cdk.Aws.REGION, package_region),
                        assert_description=(
                            f"model_package_arn is in {package_region}: deploy this stack to "
                            f"{package_region}, or use the listing's package ARN for this region"
                        ),
                    )
                ],
            )
        elif stack.region != package_region:
            raise SettingsError(
                f"setting 'model_package_arn' = {model_package_arn!r} is not allowed in region "
                f"{stack.region}: a model package exists only in its own region ({package_region}); "
                f"expected a package ARN in {stack.region} (arn:<partition>:sagemaker:{stack.region}:...), "
                f"or deploy to {package_region}"
            )

    def _allow_endpoint_logs(self, stack: cdk.Stack, endpoint_name: str) -> None:
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{ENDPOINT_LOG_GROUP_PREFIX}/{endpoint_name}",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # The CloudWatch Logs access-control overview ("CloudWatch Logs resources and operations") lists
        # both forms of a log group's ARN: "Both of the following are used" - without and with a
        # trailing ":*", the latter "when specifying permissions in IAM policies for all other API
        # actions". Grant both, plus the streams SageMaker creates in the group.
        log_group_any_arn = f"{log_group_arn}:*"
        log_streams_arn = f"{log_group_arn}:log-stream:*"
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EndpointLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                resources=[log_group_arn, log_group_any_arn, log_streams_arn],
            )
        )
        nag.acknowledge(
            self.role,
            nag.wildcard_resource_finding(self, log_streams_arn),
            "SageMaker names one log stream per instance at run time; the wildcard is limited to the "
            "streams of this endpoint's own log group.",
        )
        nag.acknowledge(
            self.role,
            nag.wildcard_resource_finding(self, log_group_any_arn),
            "The ':*' form of this endpoint's own log group ARN, which the CloudWatch Logs authorization "
            "reference uses for most log actions; it matches nothing outside that group.",
        )

    def _allow_endpoint_metrics(self) -> None:
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": ENDPOINT_METRICS_NAMESPACE}},
            )
        )

    def _allow_vpc_interfaces(
        self, stack: cdk.Stack, subnet_ids: Sequence[str], security_group_ids: Sequence[str]
    ) -> None:
        def ec2_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="ec2", resource=resource, resource_name=name)

        network_interfaces = ec2_arn("network-interface", "*")
        self.role.add_to_principal_policy(
            iam.PolicyStatement(sid="VpcDescribe", actions=list(_ENI_DESCRIBE_ACTIONS), resources=["*"])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="VpcCreateInterfaces",
                actions=["ec2:CreateNetworkInterface"],
                resources=[
                    network_interfaces,
                    *(ec2_arn("subnet", subnet) for subnet in subnet_ids),
                    *(ec2_arn("security-group", group) for group in security_group_ids),
                ],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="VpcManageInterfaces", actions=list(_ENI_MANAGE_ACTIONS), resources=[network_interfaces]
            )
        )
        nag.acknowledge(
            self.role,
            nag.wildcard_resource_finding(self, network_interfaces),
            "SageMaker creates the model's network interfaces at deploy time, so their IDs are unknown at "
            "synth; creation is limited to the configured subnets and security groups.",
        )
