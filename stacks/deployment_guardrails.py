"""Safe endpoint updates: the endpoint's DeploymentConfig and the IAM statement it needs.

SageMaker watches the auto-rollback alarms during an update (blue/green traffic shifting or a rolling
update) and rolls back when one fires. The alarms are named by plain strings derived from the endpoint name
(see stacks/alarms.py), so the endpoint does not reference the alarm resources and there is no cycle; the
stack should still make the endpoint depend on the alarms so they exist before the first update.

Per the deployment-guardrails guide, the endpoint's execution role must be allowed `cloudwatch:DescribeAlarms`
on those alarms; `describe_alarms_statement` grants exactly that, on their ARNs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.setting_types import check_setting_types

# Limits from the SageMaker API reference (TrafficRoutingConfig, BlueGreenUpdatePolicy, RollingUpdatePolicy,
# AutoRollbackConfig).
MAX_WAIT_SECONDS = 3600
MIN_EXECUTION_TIMEOUT_SECONDS = 600
MAX_EXECUTION_TIMEOUT_SECONDS = 28_800
MAX_ROLLBACK_ALARMS = 10
DEFAULT_TERMINATION_WAIT_SECONDS = 1800  # the longest a stream lives
PROVISIONING_ALLOWANCE_SECONDS = 3600  # GPU instances, image pull and health check, with room to spare


class DeploymentStrategy(StrEnum):
    """How SageMaker replaces the fleet on an endpoint update."""

    BLUE_GREEN = "blue_green"  # a full new fleet, traffic shifted to it, old fleet kept until termination
    ROLLING = "rolling"  # batches of instances replaced in place: no double capacity, slower


class TrafficShifting(StrEnum):
    """Blue/green traffic routing types (TrafficRoutingConfig.Type)."""

    ALL_AT_ONCE = "ALL_AT_ONCE"
    CANARY = "CANARY"
    LINEAR = "LINEAR"


class CapacityUnit(StrEnum):
    """Units of a canary size, linear step or rolling batch (CapacitySize.Type)."""

    INSTANCE_COUNT = "INSTANCE_COUNT"
    CAPACITY_PERCENT = "CAPACITY_PERCENT"


# Allowed step sizes in percent of the variant's instances, from the API reference: canary "less than or
# equal to 50%", linear step "10-50%", rolling batch "between 5% to 50%".
STEP_PERCENT_BOUNDS: dict[str, tuple[int, int]] = {
    TrafficShifting.CANARY: (1, 50),
    TrafficShifting.LINEAR: (10, 50),
    DeploymentStrategy.ROLLING: (5, 50),
}


def _check_choice(name: str, value: str, enum: type[StrEnum]) -> None:
    allowed = [member.value for member in enum]
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: must be one of {', '.join(allowed)}")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}={value!r}: must be whole seconds from {low} to {high}")


@dataclass(frozen=True)
class DeploymentSettings:
    """How endpoint updates roll out and when they give up; field names are the cdk.json keys."""

    deployment_strategy: str = DeploymentStrategy.BLUE_GREEN.value
    # Blue/green only: how traffic moves to the new fleet.
    deployment_traffic_shifting: str = TrafficShifting.ALL_AT_ONCE.value
    # Canary size, linear step or rolling batch, in deployment_step_unit. Required for CANARY, LINEAR and
    # rolling; must be empty for ALL_AT_ONCE.
    deployment_step_unit: str = CapacityUnit.CAPACITY_PERCENT.value
    deployment_step_size: int | None = None
    # Baking period after each step, while SageMaker watches the rollback alarms (0-3600 s). 10 minutes lets
    # the 3-of-5-minutes alarms reach ALARM before the next step.
    deployment_wait_interval_seconds: int = 600
    # Blue/green only: how long the old fleet lives after the shift (0-3600 s; empty = 1800). Streams last
    # up to 30 minutes and the old fleet keeps serving the ones it holds, so ending it sooner cuts them.
    deployment_termination_wait_seconds: int | None = None
    # Give up (and roll back) after this long (600-28800 s); empty = the configured waits plus an hour for
    # provisioning, so a long termination wait never makes every update time out.
    deployment_maximum_execution_timeout_seconds: int | None = None
    # Rolling only: batch size when rolling back, in deployment_step_unit; empty means all at once.
    deployment_rollback_batch_size: int | None = None

    def __post_init__(self) -> None:
        check_setting_types(self)
        _check_choice("deployment_strategy", self.deployment_strategy, DeploymentStrategy)
        _check_choice("deployment_traffic_shifting", self.deployment_traffic_shifting, TrafficShifting)
        _check_choice("deployment_step_unit", self.deployment_step_unit, CapacityUnit)
        rolling = self.deployment_strategy == DeploymentStrategy.ROLLING
        if rolling and self.deployment_traffic_shifting != TrafficShifting.ALL_AT_ONCE:
            raise ValueError(
                f"deployment_traffic_shifting={self.deployment_traffic_shifting!r}: only applies to "
                f"deployment_strategy={DeploymentStrategy.BLUE_GREEN.value!r}; a rolling update shifts "
                "traffic batch by batch (set deployment_step_size instead)"
            )
        self._check_step_size()
        _check_range(
            "deployment_wait_interval_seconds", self.deployment_wait_interval_seconds, 0, MAX_WAIT_SECONDS
        )
        if self.deployment_termination_wait_seconds is not None:
            if rolling:
                raise ValueError(
                    f"deployment_termination_wait_seconds={self.deployment_termination_wait_seconds!r}: "
                    f"only applies to deployment_strategy={DeploymentStrategy.BLUE_GREEN.value!r} "
                    "(a rolling update keeps no old fleet)"
                )
            _check_range(
                "deployment_termination_wait_seconds",
                self.deployment_termination_wait_seconds,
                0,
                MAX_WAIT_SECONDS,
            )
        self._check_timeout()
        rollback_size = self.deployment_rollback_batch_size
        if rollback_size is not None:
            if not rolling:
                raise ValueError(
                    f"deployment_rollback_batch_size={rollback_size!r}: only applies to "
                    f"deployment_strategy={DeploymentStrategy.ROLLING.value!r}"
                )
            percent = self.deployment_step_unit == CapacityUnit.CAPACITY_PERCENT
            if rollback_size < 1 or (percent and rollback_size > 100):
                raise ValueError(
                    f"deployment_rollback_batch_size={rollback_size!r}: must be "
                    + ("1-100 percent of the variant's instances" if percent else "at least 1 instance")
                )

    @property
    def termination_wait_seconds(self) -> int:
        """Blue/green: seconds the old fleet lives after the shift (the setting, or 30 minutes)."""
        if self.deployment_termination_wait_seconds is None:
            return DEFAULT_TERMINATION_WAIT_SECONDS
        return self.deployment_termination_wait_seconds

    @property
    def stepped(self) -> str | None:
        """The stepped mode whose size bounds apply (CANARY, LINEAR or rolling), None for ALL_AT_ONCE."""
        if self.deployment_strategy == DeploymentStrategy.ROLLING:
            return DeploymentStrategy.ROLLING.value
        if self.deployment_traffic_shifting != TrafficShifting.ALL_AT_ONCE:
            return self.deployment_traffic_shifting
        return None

    def _check_step_size(self) -> None:
        size = self.deployment_step_size
        mode = self.stepped
        if mode is None:
            if size is not None:
                raise ValueError(
                    f"deployment_step_size={size!r}: only applies to CANARY or LINEAR traffic shifting or a "
                    "rolling update; ALL_AT_ONCE shifts everything in one step (leave it empty)"
                )
            return
        if size is None:
            raise ValueError(
                f"deployment_step_size=None: {mode} needs a step size in {self.deployment_step_unit} "
                f"(allowed {self._step_bounds_text(mode)})"
            )
        if self.deployment_step_unit == CapacityUnit.CAPACITY_PERCENT:
            low, high = STEP_PERCENT_BOUNDS[mode]
            if not low <= size <= high:
                raise ValueError(
                    f"deployment_step_size={size!r}: {mode} allows {self._step_bounds_text(mode)}"
                )
        elif size < 1:
            raise ValueError(f"deployment_step_size={size!r}: must be at least 1 instance")

    def _step_bounds_text(self, mode: str) -> str:
        low, high = STEP_PERCENT_BOUNDS[mode]
        if self.deployment_step_unit == CapacityUnit.CAPACITY_PERCENT:
            return f"{low}-{high} percent of the variant's instances"
        return f"{low}-{high}% of the variant's instances, as a whole number of instances"

    def _check_timeout(self) -> None:
        timeout = self.deployment_maximum_execution_timeout_seconds
        if timeout is None:
            return
        _check_range(
            "deployment_maximum_execution_timeout_seconds",
            timeout,
            MIN_EXECUTION_TIMEOUT_SECONDS,
            MAX_EXECUTION_TIMEOUT_SECONDS,
        )

    def check_instance_count(self, instance_count: int) -> None:
        """Refuse steps impossible for `instance_count` instances (SageMaker only says so mid-update)."""
        if instance_count < 1:
            raise ValueError(f"instance_count={instance_count!r}: must be at least 1")
        mode = self.stepped
        if mode is None:
            return
        if instance_count < 2:
            raise ValueError(
                f"{mode} updates with instance_count=1: a step of at most 50% of one instance is impossible; "
                f"use deployment_traffic_shifting={TrafficShifting.ALL_AT_ONCE.value!r} with "
                f"deployment_strategy={DeploymentStrategy.BLUE_GREEN.value!r}, or run at least 2 instances"
            )
        rollback_size = self.deployment_rollback_batch_size
        if self.deployment_step_unit == CapacityUnit.INSTANCE_COUNT and (rollback_size or 0) > instance_count:
            raise ValueError(
                f"deployment_rollback_batch_size={rollback_size!r} instances: more than "
                f"instance_count={instance_count}"
            )
        size = self.deployment_step_size
        if self.deployment_step_unit == CapacityUnit.INSTANCE_COUNT and size is not None:
            low, high = STEP_PERCENT_BOUNDS[mode]
            percent = 100 * size / instance_count
            if not low <= percent <= high:
                raise ValueError(
                    f"deployment_step_size={size!r} instances is {percent:g}% of "
                    f"instance_count={instance_count}; {mode} allows {low}-{high}%"
                )

    def check_scaled_instance_counts(self, lowest: int, highest: int) -> None:
        """Refuse steps impossible for any fleet size from `lowest` to `highest` instances.

        With scaling on, an update keeps the scaled instance count (RetainAllVariantProperties), so the
        fleet an update starts from can be any count the scaling policy allows, not only the initial one.
        """
        if self.stepped is None:
            return
        for count in range(lowest, highest + 1):
            try:
                self.check_instance_count(count)
                self.maximum_execution_timeout_seconds(count)
            except ValueError as error:
                raise ValueError(
                    f"with scaling on, an update starts from the scaled fleet of any size from "
                    f"scaling_min_instances={lowest} to scaling_max_instances={highest} instances, and at "
                    f"{count} instance(s): {error}; expected deployment_traffic_shifting, "
                    "deployment_step_unit and deployment_step_size valid for every size in that range "
                    "(raise scaling_min_instances, lower scaling_max_instances, change the step, or use "
                    f"{TrafficShifting.ALL_AT_ONCE.value})"
                ) from None

    def steps(self, instance_count: int) -> int:
        """How many baking periods an update of `instance_count` instances goes through."""
        mode, size = self.stepped, self.deployment_step_size
        if mode is None:
            return 1
        if mode == TrafficShifting.CANARY or size is None:
            return 2  # the canary, then the rest
        if self.deployment_step_unit == CapacityUnit.CAPACITY_PERCENT:
            return math.ceil(100 / size)
        return math.ceil(instance_count / size)

    def configured_waits_seconds(self, instance_count: int) -> int:
        """The waiting an update always contains: every baking period, plus the termination wait."""
        waits = self.deployment_wait_interval_seconds * self.steps(instance_count)
        if self.deployment_strategy == DeploymentStrategy.BLUE_GREEN:
            waits += self.termination_wait_seconds
        return waits

    def maximum_execution_timeout_seconds(self, instance_count: int) -> int:
        """The setting (checked against the waits), or the waits plus an hour for provisioning."""
        waits = self.configured_waits_seconds(instance_count)
        timeout = self.deployment_maximum_execution_timeout_seconds
        if timeout is None:
            return min(waits + PROVISIONING_ALLOWANCE_SECONDS, MAX_EXECUTION_TIMEOUT_SECONDS)
        if timeout <= waits:
            raise ValueError(
                f"deployment_maximum_execution_timeout_seconds={timeout!r}: must be larger than the waits an "
                f"update of {instance_count} instance(s) contains ({waits} s of baking periods and "
                "termination wait), or every update times out"
            )
        return timeout


@dataclass(frozen=True)
class DeploymentGuardrails:
    """The endpoint's deployment config and the execution-role statement it needs."""

    deployment_config: sagemaker.CfnEndpoint.DeploymentConfigProperty
    describe_alarms_statement: iam.PolicyStatement
    rollback_alarm_names: tuple[str, ...]


def build_deployment_guardrails(
    scope: Construct,
    *,
    settings: DeploymentSettings,
    rollback_alarm_names: Sequence[str],
    instance_count: int,
    scaling_bounds: tuple[int, int] | None = None,
) -> DeploymentGuardrails:
    """Turn settings into a DeploymentConfig that rolls back on `rollback_alarm_names`.

    `instance_count` is the variant's (initial) instance count; step sizes are checked against it, because
    SageMaker only rejects an impossible canary or batch when the update starts. `scaling_bounds` is
    (scaling_min_instances, scaling_max_instances) when scaling is on: an update keeps the scaled count,
    so steps are checked against every count in it, and the default execution timeout covers the largest
    fleet's steps, so an update after a scale-out does not time out and roll back.
    """
    names = tuple(rollback_alarm_names)
    if not 1 <= len(names) <= MAX_ROLLBACK_ALARMS:
        raise ValueError(
            f"rollback_alarm_names: {len(names)} given; SageMaker accepts 1 to {MAX_ROLLBACK_ALARMS} "
            "rollback alarms"
        )
    for name in names:
        if cdk.Token.is_unresolved(name):
            raise ValueError(
                "rollback_alarm_names: a token was given; pass the plain alarm names "
                "(EndpointAlarms.rollback_alarm_names) so the endpoint does not depend on the alarm resources"
            )
    settings.check_instance_count(instance_count)
    largest = instance_count
    if scaling_bounds is not None:
        settings.check_scaled_instance_counts(*scaling_bounds)
        largest = max(instance_count, scaling_bounds[1])
    # The waits grow with the fleet (more linear steps), so the largest fleet sets the timeout.
    timeout = settings.maximum_execution_timeout_seconds(largest)

    deployment_config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
        auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=name) for name in names]
        ),
        blue_green_update_policy=(
            _blue_green(settings, timeout)
            if settings.deployment_strategy == DeploymentStrategy.BLUE_GREEN
            else None
        ),
        rolling_update_policy=(
            _rolling(settings, timeout)
            if settings.deployment_strategy == DeploymentStrategy.ROLLING
            else None
        ),
    )
    stack = cdk.Stack.of(scope)
    statement = iam.PolicyStatement(
        sid="DescribeAutoRollbackAlarms",
        actions=["cloudwatch:DescribeAlarms"],
        resources=[
            stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=name,
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for name in names
        ],
    )
    return DeploymentGuardrails(
        deployment_config=deployment_config, describe_alarms_statement=statement, rollback_alarm_names=names
    )


def _capacity(settings: DeploymentSettings, value: int) -> sagemaker.CfnEndpoint.CapacitySizeProperty:
    return sagemaker.CfnEndpoint.CapacitySizeProperty(type=settings.deployment_step_unit, value=value)


def _blue_green(
    settings: DeploymentSettings, timeout: int
) -> sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty:
    shifting = settings.deployment_traffic_shifting
    size = settings.deployment_step_size
    return sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
        traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
            type=shifting,
            canary_size=_capacity(settings, size) if shifting == TrafficShifting.CANARY and size else None,
            linear_step_size=_capacity(settings, size)
            if shifting == TrafficShifting.LINEAR and size
            else None,
            wait_interval_in_seconds=settings.deployment_wait_interval_seconds,
        ),
        termination_wait_in_seconds=settings.termination_wait_seconds,
        maximum_execution_timeout_in_seconds=timeout,
    )


def _rolling(settings: DeploymentSettings, timeout: int) -> sagemaker.CfnEndpoint.RollingUpdatePolicyProperty:
    size = settings.deployment_step_size
    assert size is not None  # DeploymentSettings refuses a rolling update without a batch size
    rollback = settings.deployment_rollback_batch_size
    return sagemaker.CfnEndpoint.RollingUpdatePolicyProperty(
        maximum_batch_size=_capacity(settings, size),
        wait_interval_in_seconds=settings.deployment_wait_interval_seconds,
        maximum_execution_timeout_in_seconds=timeout,
        rollback_maximum_batch_size=None if rollback is None else _capacity(settings, rollback),
    )
