"""CloudWatch alarms for one SageMaker endpoint variant: thresholds as settings, units made right.

Rollback alarms watch the new fleet only. The deployment-guardrails guide ("Auto-Rollback Configuration
and Monitoring") warns about alarms on both fleets: "if your old fleet trips the alarm during the
deployment, SageMaker terminates your deployment", and shows alarms with the dimension
`EndpointConfigName` of the new config to "monitor only the new fleet and exclude the old fleet". So the
5XX and latency alarms come twice: on every fleet (they page), and on the fleet of the config being
deployed (`deployed_config_name`; the endpoint's auto-rollback alarms, which do not page twice).

Every alarm has an explicit name derived from the endpoint name (a plain string known at synth), so the
endpoint's AutoRollbackConfiguration can name the rollback alarms without a token: the alarms reference the
endpoint only through its name, the endpoint references the alarms only through their names, and
CloudFormation sees no cycle.

Units: SageMaker latencies are published in microseconds and the settings are in milliseconds; the
`Invocation*Errors` metrics publish 1 per failed request and 0 per good one, so their Average is the error
rate; CPU, GPU and GPU memory utilization are summed over devices (0-100 x N), so percent-of-instance
thresholds are multiplied by the device count of the instance type.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.endpoint_metrics import (
    AVERAGE,
    FIRST_CHUNK_LATENCY_METRIC,
    MAXIMUM,
    MICROSECONDS_PER_MILLISECOND,
    SUM,
    EndpointMetrics,
    validate_endpoint_name,
)
from stacks.instance_types import instance_spec
from stacks.setting_types import check_setting_types

# A CloudWatch alarm may look back at most one day (evaluation periods x period).
MAX_ALARM_LOOKBACK_SECONDS = 86_400
# What a latency alarm may compare with its threshold (documented for ModelLatency; Sum and SampleCount
# measure traffic, not latency).
LATENCY_STATISTICS = ("Average", "Maximum")
# Name prefix of the new-fleet copies of the rollback alarms (`<endpoint>-new-fleet-5xx-error-rate`).
NEW_FLEET_PREFIX = "new-fleet-"


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{name}={value!r}: must be a fraction between 0 and 1 (0.05 means 5% of requests)")


def _check_percent(name: str, value: float) -> None:
    if not 0 < value <= 100:
        raise ValueError(f"{name}={value!r}: must be a percentage of the instance, above 0 and at most 100")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value!r}: must be a positive number")


def _check_period(name: str, value: int) -> None:
    # SageMaker publishes these metrics once a minute; a shorter alarm period would see gaps.
    if value < 60 or value % 60:
        raise ValueError(
            f"{name}={value!r}: must be a whole number of minutes in seconds (60, 120, 300, ...)"
        )


def _check_window(prefix: str, period: int, evaluations: int, datapoints: int) -> None:
    if evaluations < 1:
        raise ValueError(f"{prefix}_evaluation_periods={evaluations!r}: must be at least 1")
    if not 1 <= datapoints <= evaluations:
        raise ValueError(
            f"{prefix}_datapoints_to_alarm={datapoints!r}: must be between 1 and "
            f"{prefix}_evaluation_periods ({evaluations})"
        )
    if period * evaluations > MAX_ALARM_LOOKBACK_SECONDS:
        raise ValueError(
            f"{prefix}_period_seconds x {prefix}_evaluation_periods = {period * evaluations}: "
            f"CloudWatch allows at most {MAX_ALARM_LOOKBACK_SECONDS} seconds (one day)"
        )


@dataclass(frozen=True)
class AlarmSettings:
    """Thresholds and evaluation windows of the endpoint alarms; field names are the cdk.json keys."""

    # Request alarms (error rates, latencies): 1-minute periods, alarm on 3 bad minutes out of 5 so one
    # burst (a client retrying a bad request) does not page but a sustained fault does within ~3 minutes.
    alarm_request_period_seconds: int = 60
    alarm_request_evaluation_periods: int = 5
    alarm_request_datapoints_to_alarm: int = 3
    # Fractions of requests (Average of Invocation5XXErrors / Invocation4XXErrors / InvocationModelErrors).
    alarm_5xx_rate_threshold: float = 0.05  # server-side failures: ours to fix; rolls an update back
    alarm_4xx_rate_threshold: float = 0.10  # mostly client mistakes; higher, since clients cause them
    alarm_model_error_rate_threshold: float = 0.05  # the container returned non-2xx or broke the stream
    # Statistic of both latency alarms: Average or Maximum. The SageMaker metric reference lists
    # "Valid statistics: Average, Sum, Min, Max, Sample Count" for ModelLatency: no percentiles.
    alarm_latency_statistic: str = "Average"
    # ModelLatency (published in µs; this setting is in ms). For a stream it may not be emitted at all (the
    # alarm then stays OK: missing data is not breaching). If a live endpoint shows it measures whole stream
    # durations, set it empty (None = no alarm): a rollback alarm that always fires blocks every update.
    alarm_model_latency_threshold_ms: float | None = 2000.0
    # FirstChunkLatency (µs; setting in ms): the latency a streaming user feels. Opt-in (None = no alarm)
    # because the metric is not in the SageMaker metric reference yet; set it once seen on a live endpoint.
    alarm_first_chunk_latency_threshold_ms: float | None = None
    # Resource alarms: 5-minute averages, 3 of 3, so only a saturation that lasts 15 minutes pages.
    alarm_resource_period_seconds: int = 300
    alarm_resource_evaluation_periods: int = 3
    alarm_resource_datapoints_to_alarm: int = 3
    # Percent of the whole instance (0-100); multiplied by the vCPU / GPU count of the instance type.
    alarm_cpu_utilization_threshold_percent: float = 90.0
    alarm_memory_utilization_threshold_percent: float = 90.0  # host memory; OOM kills end every stream
    alarm_gpu_utilization_threshold_percent: float = 95.0  # saturated GPUs: scale out or raise the max
    alarm_gpu_memory_utilization_threshold_percent: float = 90.0  # CUDA OOM ends the streams on that GPU
    alarm_disk_utilization_threshold_percent: float = 80.0  # logs or model files filling the volume
    # Opt-in "no traffic" alarm: fires when not one invocation arrived in this many minutes (None = off).
    alarm_no_traffic_minutes: int | None = None

    def __post_init__(self) -> None:
        check_setting_types(self)
        for prefix in ("alarm_request", "alarm_resource"):
            period = getattr(self, f"{prefix}_period_seconds")
            _check_period(f"{prefix}_period_seconds", period)
            _check_window(
                prefix,
                period,
                getattr(self, f"{prefix}_evaluation_periods"),
                getattr(self, f"{prefix}_datapoints_to_alarm"),
            )
        for name in (
            "alarm_5xx_rate_threshold",
            "alarm_4xx_rate_threshold",
            "alarm_model_error_rate_threshold",
        ):
            _check_fraction(name, getattr(self, name))
        for field in fields(self):
            if field.name.endswith("_threshold_percent"):
                _check_percent(field.name, getattr(self, field.name))
        if self.alarm_latency_statistic not in LATENCY_STATISTICS:
            raise ValueError(
                f"alarm_latency_statistic={self.alarm_latency_statistic!r}: must be one of "
                f"{', '.join(LATENCY_STATISTICS)} (the statistics the SageMaker metric reference documents "
                "for ModelLatency that make sense for a threshold; it documents no percentiles)"
            )
        for name in ("alarm_model_latency_threshold_ms", "alarm_first_chunk_latency_threshold_ms"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        minutes = self.alarm_no_traffic_minutes
        if minutes is not None and not 5 <= minutes <= MAX_ALARM_LOOKBACK_SECONDS // 60:
            raise ValueError(
                f"alarm_no_traffic_minutes={minutes!r}: must be empty (no alarm) or whole minutes "
                f"between 5 and {MAX_ALARM_LOOKBACK_SECONDS // 60}"
            )

    @property
    def latency_statistic(self) -> str:
        """The CloudWatch statistic of the latency alarms (Average or Maximum)."""
        return self.alarm_latency_statistic


@dataclass(frozen=True)
class _AlarmSpec:
    """What differs between the threshold alarms."""

    construct_id: str
    name_suffix: str
    metric: cloudwatch.Metric
    threshold: float
    comparison: cloudwatch.ComparisonOperator
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: cloudwatch.TreatMissingData
    description: str
    pages: bool = True


class EndpointAlarms(Construct):
    """Alarms on one endpoint variant, their composite "endpoint unhealthy", and the rollback set.

    Attributes: one per alarm (`error_5xx`, `error_4xx`, `model_errors`, `model_latency`,
    `first_chunk_latency`, `cpu`, `memory`, `gpu`, `gpu_memory`, `disk`, `no_traffic`; the latency, GPU and
    no-traffic ones are None when switched off or not applicable), `all_alarms`, `rollback_alarms` (the
    new-fleet copies of the 5XX and latency alarms, scoped to `deployed_config_name`; empty without it)
    with their plain-string `rollback_alarm_names`, and `unhealthy`. With a topic, ALARM and OK
    transitions of every all-fleet alarm go to it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        instance_type: str,
        settings: AlarmSettings,
        topic: sns.ITopic | None = None,
        deployed_config_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        validate_endpoint_name(endpoint_name)
        spec = instance_spec(instance_type)
        self.endpoint_name = endpoint_name
        self.settings = settings
        self.metrics = EndpointMetrics(endpoint_name=endpoint_name, variant_name=variant_name)
        # One action for every alarm: it only names the topic (each alarm renders its ARN).
        self._notify_topic = None if topic is None else cloudwatch_actions.SnsAction(topic)
        self._created: list[tuple[cloudwatch.Alarm, str]] = []

        self.error_5xx = self._request_rate_alarm(
            "Invocation5XXErrorRate",
            "5xx-error-rate",
            "Invocation5XXErrors",
            settings.alarm_5xx_rate_threshold,
            "Share of requests answered 5XX (SageMaker or the container failed). First: the container log "
            f"group /aws/sagemaker/Endpoints/{endpoint_name}; if an update is running it rolls back.",
        )
        self.error_4xx = self._request_rate_alarm(
            "Invocation4XXErrorRate",
            "4xx-error-rate",
            "Invocation4XXErrors",
            settings.alarm_4xx_rate_threshold,
            "Share of requests refused 4XX (bad request, auth, throttling, wrong path/port). First: "
            "which clients changed; CloudTrail for AccessDenied/throttling.",
        )
        self.model_errors = self._request_rate_alarm(
            "ModelErrorRate",
            "model-error-rate",
            "InvocationModelErrors",
            settings.alarm_model_error_rate_threshold,
            "Share of requests where the container answered non-2xx or broke the stream. First: the "
            "container log group for tracebacks and rejected messages.",
        )
        self.model_latency = (
            None
            if settings.alarm_model_latency_threshold_ms is None
            else self._latency_alarm(
                "ModelLatency",
                "model-latency",
                "ModelLatency",
                settings.alarm_model_latency_threshold_ms,
                "Time in the container per request. First: GPU/CPU utilization and concurrency on the "
                "dashboard; scale out or lower the per-instance session limit.",
            )
        )
        self.first_chunk_latency = (
            None
            if settings.alarm_first_chunk_latency_threshold_ms is None
            else self._latency_alarm(
                "FirstChunkLatency",
                "first-chunk-latency",
                FIRST_CHUNK_LATENCY_METRIC,
                settings.alarm_first_chunk_latency_threshold_ms,
                "Time from stream start to the first chunk sent back. First: model warm-up and "
                "concurrency per instance on the dashboard.",
            )
        )
        self.cpu = self._utilization_alarm(
            "CPUUtilization",
            "cpu-utilization",
            "CPUUtilization",
            settings.alarm_cpu_utilization_threshold_percent,
            spec.vcpus,
            AVERAGE,
            "CPU of the variant's instances (all vCPUs) saturated for 15 minutes. First: concurrency on "
            "the dashboard; scale out or move audio decoding off the hot path.",
        )
        self.memory = self._utilization_alarm(
            "MemoryUtilization",
            "memory-utilization",
            "MemoryUtilization",
            settings.alarm_memory_utilization_threshold_percent,
            None,
            # The fullest instance matters: one OOM kill ends every stream on it.
            MAXIMUM,
            "Host memory of the fullest instance. First: concurrency per instance and a leak in per-session "
            "state (memory that does not fall when streams end).",
        )
        self.disk = self._utilization_alarm(
            "DiskUtilization",
            "disk-utilization",
            "DiskUtilization",
            settings.alarm_disk_utilization_threshold_percent,
            None,
            MAXIMUM,
            "Storage volume of the fullest instance. First: what the container writes to disk (temp "
            "audio, logs); raise the volume size in the endpoint config.",
        )
        self.gpu = (
            None
            if spec.gpus == 0
            else self._utilization_alarm(
                "GPUUtilization",
                "gpu-utilization",
                "GPUUtilization",
                settings.alarm_gpu_utilization_threshold_percent,
                spec.gpus,
                AVERAGE,
                "GPUs of the variant saturated for 15 minutes. First: is autoscaling at its maximum? "
                "Raise the maximum or the instance size.",
            )
        )
        self.gpu_memory = (
            None
            if spec.gpus == 0
            else self._utilization_alarm(
                "GPUMemoryUtilization",
                "gpu-memory-utilization",
                "GPUMemoryUtilization",
                settings.alarm_gpu_memory_utilization_threshold_percent,
                spec.gpus,
                MAXIMUM,
                "GPU memory of the fullest instance. First: concurrency per instance (each session holds "
                "GPU state); lower the session limit or pick a GPU with more memory.",
            )
        )
        self.no_traffic = (
            None
            if settings.alarm_no_traffic_minutes is None
            else self._no_traffic_alarm(settings.alarm_no_traffic_minutes)
        )

        self.rollback_alarms: tuple[cloudwatch.Alarm, ...] = (
            ()
            if deployed_config_name is None
            else self._new_fleet_alarms(
                EndpointMetrics(
                    endpoint_name=endpoint_name,
                    variant_name=variant_name,
                    endpoint_config_name=deployed_config_name,
                )
            )
        )
        # Plain strings (not the alarms' Ref tokens), so the endpoint can name them without a dependency.
        self.rollback_alarm_names: tuple[str, ...] = tuple(
            name for alarm, name in self._created if alarm in self.rollback_alarms
        )
        self.unhealthy = self._unhealthy_composite()
        self.all_alarms: tuple[cloudwatch.Alarm, ...] = tuple(alarm for alarm, _ in self._created)
        self.all_alarm_names: tuple[str, ...] = tuple(name for _, name in self._created)

    def _alarm_name(self, suffix: str) -> str:
        return f"{self.endpoint_name}-{suffix}"

    def _new_fleet_alarms(self, metrics: EndpointMetrics) -> tuple[cloudwatch.Alarm, ...]:
        """The 5XX and latency alarms again, on the new fleet only: the auto-rollback alarms."""
        scope = (
            " On the new fleet only (EndpointConfigName = the config being deployed): an auto-rollback "
            "alarm of the endpoint; it does not page, its all-fleet twin does."
        )
        settings = self.settings
        alarms = [
            self._request_rate_alarm(
                "NewFleetInvocation5XXErrorRate",
                NEW_FLEET_PREFIX + "5xx-error-rate",
                "Invocation5XXErrors",
                settings.alarm_5xx_rate_threshold,
                "Share of the new fleet's requests answered 5XX." + scope,
                metrics=metrics,
            )
        ]
        if settings.alarm_model_latency_threshold_ms is not None:
            alarms.append(
                self._latency_alarm(
                    "NewFleetModelLatency",
                    NEW_FLEET_PREFIX + "model-latency",
                    "ModelLatency",
                    settings.alarm_model_latency_threshold_ms,
                    "Time in the new fleet's container per request." + scope,
                    metrics=metrics,
                )
            )
        if settings.alarm_first_chunk_latency_threshold_ms is not None:
            alarms.append(
                self._latency_alarm(
                    "NewFleetFirstChunkLatency",
                    NEW_FLEET_PREFIX + "first-chunk-latency",
                    FIRST_CHUNK_LATENCY_METRIC,
                    settings.alarm_first_chunk_latency_threshold_ms,
                    "Time from stream start to the first chunk on the new fleet." + scope,
                    metrics=metrics,
                )
            )
        return tuple(alarms)

    def _request_rate_alarm(
        self,
        construct_id: str,
        suffix: str,
        metric_name: str,
        threshold: float,
        description: str,
        *,
        metrics: EndpointMetrics | None = None,
    ) -> cloudwatch.Alarm:
        # The Average of a metric that is 1 per failed request and 0 per good one is the error rate.
        return self._request_alarm(
            construct_id,
            suffix,
            metric_name,
            AVERAGE,
            threshold,
            description,
            metrics=metrics,
        )

    def _latency_alarm(
        self,
        construct_id: str,
        suffix: str,
        metric_name: str,
        threshold_ms: float,
        description: str,
        *,
        metrics: EndpointMetrics | None = None,
    ) -> cloudwatch.Alarm:
        statistic = self.settings.latency_statistic
        return self._request_alarm(
            construct_id,
            suffix,
            metric_name,
            statistic,
            threshold_ms * MICROSECONDS_PER_MILLISECOND,  # published in µs
            f"{description} Threshold {threshold_ms:g} ms ({statistic}).",
            metrics=metrics,
        )

    def _request_alarm(
        self,
        construct_id: str,
        suffix: str,
        metric_name: str,
        statistic: str,
        threshold: float,
        description: str,
        *,
        metrics: EndpointMetrics | None = None,
    ) -> cloudwatch.Alarm:
        """An alarm on a per-request metric, over the request window; all fleets unless ``metrics``."""
        settings = self.settings
        return self._alarm(
            _AlarmSpec(
                construct_id=construct_id,
                name_suffix=suffix,
                metric=(metrics or self.metrics).invocation(
                    metric_name,
                    statistic=statistic,
                    period=cdk.Duration.seconds(settings.alarm_request_period_seconds),
                ),
                threshold=threshold,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=settings.alarm_request_evaluation_periods,
                datapoints_to_alarm=settings.alarm_request_datapoints_to_alarm,
                # No requests means no failed requests and nothing slow.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                description=description,
                pages=metrics is None,
            )
        )

    def _utilization_alarm(
        self,
        construct_id: str,
        suffix: str,
        metric_name: str,
        threshold_percent: float,
        summed_over: int | None,
        statistic: str,
        description: str,
    ) -> cloudwatch.Alarm:
        """`summed_over` is the device count the metric is summed over, None for a plain 0-100 metric."""
        settings = self.settings
        devices = summed_over or 1
        normalisation = (
            "" if summed_over is None else f" ({threshold_percent * devices:g} summed over {devices})"
        )
        return self._alarm(
            _AlarmSpec(
                construct_id=construct_id,
                name_suffix=suffix,
                metric=self.metrics.instance(
                    metric_name,
                    statistic=statistic,
                    period=cdk.Duration.seconds(settings.alarm_resource_period_seconds),
                ),
                # The metric is summed over `devices`, so scale the percent-of-instance threshold.
                threshold=threshold_percent * devices,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=settings.alarm_resource_evaluation_periods,
                datapoints_to_alarm=settings.alarm_resource_datapoints_to_alarm,
                # Instances always publish while they run: a gap means no instance (being replaced or
                # failed), which says nothing about saturation, so keep the last state.
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
                description=f"{description} Threshold {threshold_percent:g}% of the instance{normalisation}.",
            )
        )

    def _no_traffic_alarm(self, minutes: int) -> cloudwatch.Alarm:
        return self._alarm(
            _AlarmSpec(
                construct_id="NoTraffic",
                name_suffix="no-traffic",
                metric=self.metrics.invocation(
                    "Invocations", statistic=SUM, period=cdk.Duration.minutes(minutes)
                ),
                threshold=1,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                # SageMaker publishes no Invocations data point when nothing arrives: missing is zero.
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                # The partition's DNS suffix (amazonaws.com.cn in China), as the client builds the address.
                description=f"Not one invocation in {minutes} minutes. First: can clients reach "
                f"runtime.sagemaker.<region>.{cdk.Stack.of(self).url_suffix}:8443 (DNS, VPC endpoint, IAM), "
                "and did a client deployment change the endpoint name?",
            )
        )

    def _alarm(self, spec: _AlarmSpec) -> cloudwatch.Alarm:
        name = self._alarm_name(spec.name_suffix)
        alarm = cloudwatch.Alarm(
            self,
            spec.construct_id,
            alarm_name=name,
            alarm_description=spec.description,
            metric=spec.metric,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            treat_missing_data=spec.treat_missing_data,
        )
        if spec.pages:
            self.page_on(alarm)
        self._created.append((alarm, name))
        return alarm

    def _unhealthy_composite(self) -> cloudwatch.CompositeAlarm:
        # Signals that users are failing or about to fail. 4XX (client mistakes), CPU/GPU utilization (busy
        # is not broken; autoscaling answers it) and no-traffic (may be a quiet night) stay out.
        members = [
            alarm
            for alarm in (
                self.error_5xx,
                self.model_errors,
                self.model_latency,
                self.first_chunk_latency,
                self.memory,
                self.gpu_memory,
                self.disk,
            )
            if alarm
        ]
        composite = cloudwatch.CompositeAlarm(
            self,
            "Unhealthy",
            composite_alarm_name=self._alarm_name("unhealthy"),
            alarm_description=f"Endpoint {self.endpoint_name} is unhealthy: at least one member alarm "
            "fires. First: open the dashboard, find the member in ALARM, follow its description.",
            alarm_rule=cloudwatch.AlarmRule.any_of(*members),
        )
        self.page_on(composite)
        return composite

    def page_on(self, alarm: cloudwatch.AlarmBase) -> None:
        """Send ``alarm``'s ALARM and OK transitions to the topic, if there is one."""
        if self._notify_topic is None:
            return
        alarm.add_alarm_action(self._notify_topic)
        alarm.add_ok_action(self._notify_topic)
