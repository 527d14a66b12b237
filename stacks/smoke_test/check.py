"""What the smoke check streams to, and the Lambda that runs it: one definition for trigger and canary.

Both Lambdas run ``bidistream.smoke`` from the same bundle with their own role (no managed policy; it
may write only to its own log group) and their own retained log group. ``smoke_lambda`` builds those
three under the caller's construct with the same IDs (``Logs``, ``Role``, ``Function``), so the
logical IDs are the caller's. ``SmokeCheckTarget.invoke_command`` is the CLI command an operator runs
against the same path and query by hand (the stack's ``InvokeCommand`` output).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.settings import Settings, SmokeMode
from stacks.smoke_test import bundle

LAMBDA_MEMORY_MB: Final = 512
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
# What the InvokeCommand output sends: the bundled clip (relative to the checkout, where `pip install
# -e .` runs), a line of text, or text to speak into a WAV file.
SAMPLE_CLIP: Final = "bidistream/data/speech-sample.wav"
SPEECH_OUTPUT: Final = "speech.wav"


@dataclass(frozen=True)
class SmokeCheckTarget:
    """The endpoint, mode, invocation path and query string of the check (from the settings)."""

    endpoint_name: str
    mode: SmokeMode
    invocation_path: str | None
    query_string: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmokeCheckTarget:
        return cls(
            endpoint_name=settings.resolved_endpoint_name,
            mode=settings.resolved_smoke_mode,
            invocation_path=settings.resolved_smoke_invocation_path,
            query_string=settings.resolved_smoke_query_string,
        )

    def environment(self, budget_seconds: int) -> dict[str, str]:
        """The variables ``bidistream.smoke`` reads in the Lambda (unset ones take the mode's default)."""
        environment = {
            "ENDPOINT_NAME": self.endpoint_name,
            "SMOKE_MODE": self.mode,
            "SMOKE_BUDGET_SECONDS": str(budget_seconds),
        }
        if self.invocation_path is not None:
            environment["INVOCATION_PATH"] = self.invocation_path
        if self.query_string is not None:
            environment["QUERY_STRING"] = self.query_string
        return environment

    def invoke_command(self, region: str) -> list[str]:
        """``bidistream invoke`` on the check's path and query, with input that mode's model answers.

        Shell words: the query is single-quoted (it holds ``&``). Speak mode needs ``--output``: only
        then does the CLI send the text as Speak + Close and write the audio (bare text is not Speak).
        """
        command = ["bidistream", "invoke", self.endpoint_name, "--region", region]
        if self.invocation_path is not None:
            command += ["--path", self.invocation_path]
        if self.query_string is not None:
            command += ["--query", f"'{self.query_string}'"]
        if self.mode == "transcribe":
            return [*command, "--audio", SAMPLE_CLIP]
        if self.mode == "speak":
            return [*command, "--text", "hello", "--output", SPEECH_OUTPUT]
        return [*command, "--text", "hello"]


@dataclass(frozen=True)
class SmokeLambda[FunctionT: lambda_.Function]:
    function: FunctionT
    role: iam.Role
    log_group: logs.LogGroup


def smoke_lambda[FunctionT: lambda_.Function](
    scope: Construct,
    *,
    target: SmokeCheckTarget,
    purpose: str,
    description: str,
    handler: str,
    budget_seconds: int,
    timeout_seconds: int,
    function_class: Callable[..., FunctionT],
    extra_environment: Mapping[str, str] | None = None,
    extra_statements: tuple[iam.PolicyStatement, ...] = (),
    **function_options: Any,
) -> SmokeLambda[FunctionT]:
    """Log group, role and function under ``scope`` for one entry point of the smoke check.

    ``purpose`` names the entry point in the role's description; ``function_options`` go to
    ``function_class`` (e.g. a trigger's ``execute_after``).
    """
    log_group = logs.LogGroup(scope, "Logs", retention=LOG_RETENTION)
    # Our own role, not the default one with the AWSLambdaBasicExecutionRole managed policy.
    role = iam.Role(
        scope,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"Runs the {purpose} of SageMaker endpoint {target.endpoint_name}",
    )
    log_group.grant_write(role)
    for statement in extra_statements:
        role.add_to_principal_policy(statement)
    function = function_class(
        scope,
        "Function",
        description=description,
        runtime=bundle.LAMBDA_RUNTIME,
        architecture=bundle.LAMBDA_ARCHITECTURE,
        handler=handler,
        code=bundle.lambda_code(),
        environment={**target.environment(budget_seconds), **(extra_environment or {})},
        memory_size=LAMBDA_MEMORY_MB,
        timeout=cdk.Duration.seconds(timeout_seconds),
        role=role,
        log_group=log_group,
        **function_options,
    )
    return SmokeLambda(function=function, role=role, log_group=log_group)
