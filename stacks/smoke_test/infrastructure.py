"""The post-deploy smoke test: a CDK trigger that streams to the new endpoint and fails the deployment.

The trigger runs after the endpoint is in service. Its Lambda opens a bidirectional stream with the
same client code as the CLI (``bidistream.smoke``), checks the answers within a time budget, logs a
one-line report and raises on failure, so CloudFormation fails the deployment and rolls it back.

A trigger re-runs only when its function version changes. The function's environment carries
``DEPLOYMENT_FINGERPRINT``, a synth-time hash of the image and the model and endpoint-config
properties, so a new image or config makes a new version and the check runs again.

When a failed update rolls back, CloudFormation updates the trigger back to the *previous* function
version before it rolls the endpoint back, so the old check would stream to the endpoint that still
serves the failing config, fail again and leave the stack in UPDATE_ROLLBACK_FAILED. The function's
environment therefore names the endpoint config it was made for (``EXPECTED_ENDPOINT_CONFIG``) and this
stack (``STACK_ARN``): when another config serves, the check skips only if this stack is
``UPDATE_ROLLBACK_IN_PROGRESS`` (``cloudformation:DescribeStacks`` on this stack alone); on a forward
deploy another serving config means SageMaker rolled the update back, and the check fails with the
endpoint's status and FailureReason.

The Lambda's timeout covers the whole smoke budget (retries included), the bounded control-plane calls
and a start-up margin, so the one-line report is always written before Lambda stops the function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import triggers
from constructs import Construct

from stacks.smoke_test.check import SmokeCheckTarget, smoke_lambda

# Beyond the check's own budget: cold start, importing the SDK and CRT, reporting.
LAMBDA_TIMEOUT_MARGIN_SECONDS: Final = 60
# DescribeEndpoint and DescribeStacks, each at most 2 attempts x (5 s connect + 10 s read); equal to
# bidistream.smoke.CONTROL_PLANE_SECONDS (a unit test keeps them equal).
CONTROL_PLANE_SECONDS: Final = 60


def lambda_timeout_seconds(budget_seconds: int) -> int:
    """The smoke budget, the control-plane calls and the start-up margin: the report is always written."""
    return budget_seconds + CONTROL_PLANE_SECONDS + LAMBDA_TIMEOUT_MARGIN_SECONDS


class SmokeTest(Construct):
    """Runs ``bidistream.smoke`` against the endpoint once it exists, and again when it changes.

    Exposes ``function`` (the trigger's Lambda; grant it invoke rights in the stack), ``role``,
    ``log_group`` (retained: after a failed first deployment rolls back, the failure report is there)
    and ``trigger``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        target: SmokeCheckTarget,
        budget_seconds: int,
        deployment_fingerprint: str,
        endpoint_config_name: str,
        execute_after: Sequence[Construct],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        parts = smoke_lambda(
            self,
            target=target,
            purpose="post-deploy smoke test",
            description=f"Post-deploy smoke test: streams to {target.endpoint_name} and checks the answers",
            handler="handler.lambda_handler",
            budget_seconds=budget_seconds,
            timeout_seconds=lambda_timeout_seconds(budget_seconds),
            function_class=triggers.TriggerFunction,
            extra_environment={
                "DEPLOYMENT_FINGERPRINT": deployment_fingerprint,
                "EXPECTED_ENDPOINT_CONFIG": endpoint_config_name,
                "STACK_ARN": stack.stack_id,
            },
            # Is this stack rolling back? Its own status only: the stack ID is its ARN.
            extra_statements=(
                iam.PolicyStatement(
                    sid="DescribeThisStack",
                    actions=["cloudformation:DescribeStacks"],
                    resources=[stack.stack_id],
                ),
            ),
            execute_after=list(execute_after),
            execute_on_handler_change=True,
        )
        self.function = parts.function
        self.role = parts.role
        self.log_group = parts.log_group
        self.trigger = self.function.trigger
