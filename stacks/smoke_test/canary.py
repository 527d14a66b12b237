"""The streaming canary: the smoke check on a schedule, its outcome a metric, its failures an alarm.

The post-deploy trigger runs once CloudFormation has finished the endpoint update, that is after the
traffic shift: every user is already on the new fleet, and its failure starts a second full update.
The canary runs the same check every ``rate_minutes`` (the Lambda handler ``canary_handler``) and
publishes ``StreamSuccess``/``StreamFailure`` (namespace ``BidiStream/Canary``, dimension
``EndpointName``) in CloudWatch's embedded metric format. Its alarm is one of the endpoint's
auto-rollback alarms, so a new fleet that cannot stream is rolled back by SageMaker during the bake,
before the stack completes; the same alarm pages when streaming breaks in steady state.

The canary streams to whatever serves: during an all-at-once blue/green bake that is the new fleet; with
canary or linear shifting some runs reach the old fleet too (which then should pass).
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.settings import SmokeMode
from stacks.smoke_test import bundle
from stacks.smoke_test.infrastructure import LAMBDA_MEMORY_MB, LAMBDA_TIMEOUT_MARGIN_SECONDS, LOG_RETENTION

# Same names as bidistream.smoke publishes (a unit test keeps them equal).
NAMESPACE: Final = "BidiStream/Canary"
FAILURE_METRIC: Final = "StreamFailure"
SUCCESS_METRIC: Final = "StreamSuccess"
# Two failed runs in three periods: one transient blip (already retried inside the run) does not roll
# back an update, two do.
EVALUATION_PERIODS: Final = 3
DATAPOINTS_TO_ALARM: Final = 2


class StreamingCanary(Construct):
    """A scheduled Lambda streaming to the endpoint, and the alarm on its failures.

    Exposes ``function``, ``role``, ``rule``, ``alarm`` and ``alarm_name`` (a plain string, for the
    endpoint's auto-rollback configuration).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        mode: SmokeMode,
        invocation_path: str | None,
        query_string: str | None,
        budget_seconds: int,
        rate_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the streaming canary of SageMaker endpoint {endpoint_name}",
        )
        self.log_group.grant_write(self.role)
        environment = {
            "ENDPOINT_NAME": endpoint_name,
            "SMOKE_MODE": mode,
            "SMOKE_BUDGET_SECONDS": str(budget_seconds),
        }
        if invocation_path is not None:
            environment["INVOCATION_PATH"] = invocation_path
        if query_string is not None:
            environment["QUERY_STRING"] = query_string
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Streaming canary: streams to {endpoint_name} every {rate_minutes} min",
            runtime=bundle.LAMBDA_RUNTIME,
            architecture=bundle.LAMBDA_ARCHITECTURE,
            handler="handler.canary_handler",
            code=bundle.lambda_code(),
            environment=environment,
            memory_size=LAMBDA_MEMORY_MB,
            # No control-plane calls here: the budget (retries included) plus the start-up margin.
            timeout=cdk.Duration.seconds(budget_seconds + LAMBDA_TIMEOUT_MARGIN_SECONDS),
            role=self.role,
            log_group=self.log_group,
            # A scheduled run is not retried: the next one comes within rate_minutes anyway.
            retry_attempts=0,
        )
        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"Runs the streaming canary of {endpoint_name}",
            schedule=events.Schedule.rate(cdk.Duration.minutes(rate_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.alarm_name = f"{endpoint_name}-streaming-canary"
        self.alarm = cloudwatch.Alarm(
            self,
            "FailureAlarm",
            alarm_name=self.alarm_name,
            alarm_description=(
                f"The streaming canary could not stream to {endpoint_name} in {DATAPOINTS_TO_ALARM} of "
                f"{EVALUATION_PERIODS} runs (every {rate_minutes} min). An auto-rollback alarm: during an "
                f"update SageMaker rolls back. First: the canary's log group {self.log_group.log_group_name} "
                "has one JSON line per run saying what was expected and what came back."
            ),
            metric=cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=FAILURE_METRIC,
                dimensions_map={"EndpointName": endpoint_name},
                statistic=cloudwatch.Stats.SUM,
                period=cdk.Duration.minutes(rate_minutes),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=EVALUATION_PERIODS,
            datapoints_to_alarm=DATAPOINTS_TO_ALARM,
            # Each run publishes 0 or 1 before its timeout; a run that published nothing proves nothing.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
