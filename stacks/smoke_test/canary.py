"""The streaming canary: the smoke check on a schedule, its outcome a metric, its failures an alarm.

The post-deploy trigger runs once CloudFormation has finished the endpoint update, that is after the
traffic shift: every user is already on the new fleet, and its failure starts a second full update.
The canary runs the same check every ``rate_minutes`` (the Lambda handler ``canary_handler``) and
publishes ``StreamSuccess``/``StreamFailure`` (namespace ``BidiStream/Canary``, dimension
``EndpointName``) in CloudWatch's embedded metric format; every run publishes one of them, whatever
went wrong. Two alarms:

* ``<endpoint>-streaming-canary`` on failed runs: one of the endpoint's auto-rollback alarms, so a new
  fleet that cannot stream is rolled back by SageMaker during the bake, before the stack completes;
  it pages when streaming breaks in steady state. Missing data is not breaching here.
* ``<endpoint>-streaming-canary-stopped`` on runs (success + failure), missing data breaching: a
  canary that no longer reports (not started, throttled, timed out, lost its log permissions) pages.
  It is no rollback alarm: a canary that the same update creates or changes has no data for its first
  periods, and a silent canary says nothing about the new fleet.

Runs never pile up: a run's timeout fits within the interval (the budget is capped to fit), and an
event Lambda could not start within a minute is dropped rather than queued; the next run comes anyway.
No reserved concurrency: reserving even 1 fails the deployment in accounts whose concurrency quota
leaves less than 100 unreserved (new accounts can start with a quota under 100; Lambda developer
guide, *Configuring reserved concurrency*: "You can reserve up to the Unreserved account concurrency
value minus 100").

The canary streams to whatever serves: during an all-at-once blue/green bake that is the new fleet; with
canary or linear shifting some runs reach the old fleet too (which then should pass).
"""

from __future__ import annotations

import math
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.endpoint_metrics import SUM
from stacks.smoke_test.check import SmokeCheckTarget, smoke_lambda

# Same names as bidistream.smoke publishes (a unit test keeps them equal).
NAMESPACE: Final = "BidiStream/Canary"
FAILURE_METRIC: Final = "StreamFailure"
SUCCESS_METRIC: Final = "StreamSuccess"
# Two failed runs in three periods: one transient blip (already retried inside the run) does not roll
# back an update, two do.
EVALUATION_PERIODS: Final = 3
DATAPOINTS_TO_ALARM: Final = 2
# Within a run's timeout, beyond its budget: closing the stream and writing the report. (Cold start is
# the Lambda init phase, which the timeout does not count.)
RUN_MARGIN_SECONDS: Final = 20
# An event Lambda could not start at once (throttled) is dropped after this, the minimum Lambda and
# EventBridge accept (Lambda's default is 6 hours of queued, overlapping runs).
MAX_EVENT_AGE: Final = cdk.Duration.minutes(1)
# The stopped alarm fires after this many periods without a run, and never sooner than this many
# minutes: metrics extracted from log lines can arrive late.
STOPPED_MIN_PERIODS: Final = 3
STOPPED_MIN_MINUTES: Final = 5


def run_budget_seconds(budget_seconds: int, rate_minutes: int) -> int:
    """The smoke budget, capped so that a run (budget + margin) ends before the next one is due."""
    return min(budget_seconds, rate_minutes * 60 - RUN_MARGIN_SECONDS)


def stopped_evaluation_periods(rate_minutes: int) -> int:
    """How many silent periods in a row page: at least 3 runs and 5 minutes."""
    return max(STOPPED_MIN_PERIODS, math.ceil(STOPPED_MIN_MINUTES / rate_minutes))


class StreamingCanary(Construct):
    """A scheduled Lambda streaming to the endpoint, the alarm on its failures and the one on its silence.

    Exposes ``function``, ``role``, ``log_group``, ``rule``, ``alarm`` (failures; ``alarm_name`` is its
    plain name, for the endpoint's auto-rollback configuration) and ``stopped_alarm``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        target: SmokeCheckTarget,
        budget_seconds: int,
        rate_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint_name = target.endpoint_name
        run_budget = run_budget_seconds(budget_seconds, rate_minutes)
        parts = smoke_lambda(
            self,
            target=target,
            purpose="streaming canary",
            description=f"Streaming canary: streams to {endpoint_name} every {rate_minutes} min",
            handler="handler.canary_handler",
            budget_seconds=run_budget,
            # No control-plane calls here: the budget (retries included) plus the margin, within the
            # interval, so runs never overlap.
            timeout_seconds=run_budget + RUN_MARGIN_SECONDS,
            function_class=lambda_.Function,
            # A scheduled run is not retried, nor started late: the next one comes within rate_minutes.
            retry_attempts=0,
            max_event_age=MAX_EVENT_AGE,
        )
        self.function = parts.function
        self.role = parts.role
        self.log_group = parts.log_group
        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"Runs the streaming canary of {endpoint_name}",
            schedule=events.Schedule.rate(cdk.Duration.minutes(rate_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0, max_event_age=MAX_EVENT_AGE)],
        )
        period = cdk.Duration.minutes(rate_minutes)

        def published(metric_name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=metric_name,
                dimensions_map={"EndpointName": endpoint_name},
                statistic=SUM,
                period=period,
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
            metric=published(FAILURE_METRIC),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=EVALUATION_PERIODS,
            datapoints_to_alarm=DATAPOINTS_TO_ALARM,
            # A rollback alarm must not fire on silence: a canary this update creates or changes has no
            # data yet, which would roll back a healthy update. A silent canary is stopped_alarm's job.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        silent_periods = stopped_evaluation_periods(rate_minutes)
        self.stopped_alarm = cloudwatch.Alarm(
            self,
            "StoppedAlarm",
            alarm_name=f"{endpoint_name}-streaming-canary-stopped",
            alarm_description=(
                f"The streaming canary of {endpoint_name} recorded no run in {silent_periods} periods of "
                f"{rate_minutes} min: it is not starting, is throttled, times out or cannot write its "
                "logs, so nothing watches streaming. Pages only, never rolls back. First: the function's "
                f"Errors and Throttles metrics and its log group {self.log_group.log_group_name}."
            ),
            metric=cloudwatch.MathExpression(
                expression="success + failure",
                using_metrics={"success": published(SUCCESS_METRIC), "failure": published(FAILURE_METRIC)},
                label="Canary runs",
                period=period,
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=silent_periods,
            datapoints_to_alarm=silent_periods,
            # Every run publishes one of the two, so no data at all means no run finished.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
