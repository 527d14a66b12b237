"""The app's settings: one frozen, typed object built from CDK context and validated once.

Settings come from ``cdk.json`` context and ``-c key=value`` on the CDK command line. Every setting
is a snake_case context key. CDK's own keys contain ``@``, ``:`` or ``-`` (``@aws-cdk/...``,
``aws:cdk:...``, ``cli-telemetry``), so a key of only letters, digits and underscores that is not a
setting is a typo and is refused, as is a hyphenated spelling of a setting (``instance-type``).
A bad value fails synth with a message naming the setting, the value and what is allowed.

The operations settings (``alarm_*``, ``scaling_*``, ``deployment_*``) are flat context keys too; they are
grouped into ``AlarmSettings``, ``ScalingSettings`` and ``DeploymentSettings`` (``settings.alarms``,
``settings.scaling``, ``settings.deployment``), whose defaults and range checks live beside the construct
that uses them. This module converts their values and turns the groups' refusals into ``SettingsError``.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

from stacks.alarms import AlarmSettings
from stacks.deployment_guardrails import DeploymentSettings
from stacks.endpoint_metrics import SAGEMAKER_NAME_PATTERN
from stacks.instance_types import (
    INFERENCE_AMI_ACCELERATORS,
    INSTANCE_SPECS,
    INSTANCE_TYPE_PATTERN,
    AcceleratorKind,
    has_gpu,
    has_local_nvme,
    inference_amis_for,
    instance_family,
    instance_spec,
    known_instance_types,
)
from stacks.notifications import EMAIL_PATTERN
from stacks.scaling import ScalingMetric, ScalingSettings

# The modes of bidistream.smoke (its MODES; a unit test keeps the two equal without importing the SDK here).
SmokeMode = Literal["echo", "transcribe", "speak"]
SMOKE_MODES: Final[tuple[SmokeMode, ...]] = typing.get_args(SmokeMode)

DEFAULT_INSTANCE_TYPE: Final = "ml.g6.2xlarge"
# Deepgram's SageMaker listing serves Nova-3 here; our own speech model speaks the same messages.
SPEECH_INVOCATION_PATH: Final = "v1/listen"
# The smoke clip goes as raw 16 kHz 16-bit PCM, which Deepgram decodes only when told the encoding.
MARKETPLACE_QUERY_STRING: Final = "model=nova-3&encoding=linear16&sample_rate=16000"
# Text to speech, Deepgram's path and query for Aura (our own speak model takes the same).
SPEAK_INVOCATION_PATH: Final = "v1/speak"
SPEAK_QUERY_STRING: Final = "model=aura-2-thalia-en&encoding=linear16&sample_rate=24000"

_SETTINGS_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_GROUP_ERROR = re.compile(r"^(?P<name>[a-z0-9_]+)=(?P<value>.*?): (?P<rule>.*)$", re.DOTALL)
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_MODEL_PACKAGE_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:sagemaker:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:model-package/"
    r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}(/[0-9]+)?$"
)
_KMS_KEY_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$"
)
_CONTAINER_USER = re.compile(r"^(root|0:0|[1-9][0-9]{0,4}:[0-9]{1,5})$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")
_INVOCATION_PATH = re.compile(r"^[A-Za-z0-9._~/-]{1,100}$")
_QUERY_STRING = re.compile(r"^[A-Za-z0-9._~=&%+-]{1,2048}$")


class SettingsError(ValueError):
    """A setting has a value the app cannot deploy; the message names the setting and what is allowed."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the deployment; build it with :meth:`from_context`, never by hand in app code."""

    stack_name: str = "BidiStream"
    endpoint_name: str | None = None
    model_package_arn: str | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    container_user: str = "10001:10001"
    variant_name: str = "AllTraffic"
    volume_size_gb: int | None = None
    container_startup_health_check_timeout_seconds: int = 600
    model_data_download_timeout_seconds: int = 600
    inference_ami_version: str | None = None
    kms_key_arn: str | None = None
    vpc_subnet_ids: tuple[str, ...] = ()
    vpc_security_group_ids: tuple[str, ...] = ()
    network_isolation: bool | None = None
    alarm_email_addresses: tuple[str, ...] = ()
    # Each group below is its own dataclass (defaults and range checks beside the construct that uses
    # them); its fields are flat context keys like every other setting.
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    scaling_enabled: bool = True
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    deployment: DeploymentSettings = field(default_factory=DeploymentSettings)
    smoke_test: bool = True
    smoke_mode: SmokeMode | None = None
    smoke_invocation_path: str | None = None
    smoke_query_string: str | None = None
    smoke_budget_seconds: int = 60
    canary: bool = True
    canary_rate_minutes: int = 1

    def __post_init__(self) -> None:
        _check_cross_setting_rules(self)

    # Derived values: what the constructs use, so no construct re-implements a default.
    @property
    def resolved_endpoint_name(self) -> str:
        """The endpoint name: the setting, or the stack name in lower case."""
        return self.endpoint_name or self.stack_name.lower()

    @property
    def uses_model_package(self) -> bool:
        """Marketplace model package mode (``ModelPackageName``) instead of our own container image."""
        return self.model_package_arn is not None

    @property
    def resolved_network_isolation(self) -> bool:
        """Network isolation: forced on for a model package, off by default for our container."""
        if self.network_isolation is None:
            return self.uses_model_package
        return self.network_isolation

    @property
    def resolved_container_user(self) -> str:
        """The RUN_AS_USER build argument: uid:gid, with root spelled 0:0."""
        return "0:0" if self.container_user == "root" else self.container_user

    @property
    def uses_vpc(self) -> bool:
        return bool(self.vpc_subnet_ids)

    @property
    def resolved_smoke_mode(self) -> SmokeMode:
        """What the smoke test checks: transcription for a package, echo for our container by default."""
        if self.smoke_mode is not None:
            return self.smoke_mode
        return "transcribe" if self.uses_model_package else "echo"

    @property
    def resolved_smoke_invocation_path(self) -> str | None:
        if self.smoke_invocation_path is not None:
            return self.smoke_invocation_path
        return {"transcribe": SPEECH_INVOCATION_PATH, "speak": SPEAK_INVOCATION_PATH}.get(
            self.resolved_smoke_mode
        )

    @property
    def resolved_smoke_query_string(self) -> str | None:
        if self.smoke_query_string is not None:
            return self.smoke_query_string
        if self.resolved_smoke_mode == "speak":  # for our speak model and a Deepgram Aura package alike
            return SPEAK_QUERY_STRING
        return MARKETPLACE_QUERY_STRING if self.uses_model_package else None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Settings:
        """Build settings from CDK context (cdk.json and ``-c``); raise ``SettingsError`` on a bad one."""
        known = set(_PARSERS)
        values: dict[str, Any] = {}
        for key, raw in sorted(context.items()):
            if not _SETTINGS_NAMESPACE.match(key) and key.replace("-", "_") not in known:
                continue  # CDK's own context: feature flags, aws:cdk:*, cli-telemetry, lookups
            if key not in known:
                raise SettingsError(_unknown_setting_message(key, raw, known))
            values[key] = _PARSERS[key](key, raw)
        for group_name, group in SETTING_GROUPS.items():
            group_keys = {item.name for item in fields(group)}
            group_values = {key: values.pop(key) for key in sorted(group_keys & set(values))}
            values[group_name] = _build_group(group, group_values)
        return cls(**values)


def _build_group[G](group: Callable[..., G], values: dict[str, Any]) -> G:
    """One settings group, its own checks turned into a SettingsError naming setting, value and limits."""
    try:
        return group(**values)
    except ValueError as error:
        raise _as_settings_error(error) from None


def _as_settings_error(error: ValueError) -> SettingsError:
    # The groups say "name=value: must be ..."; say it the way every other setting error does.
    match = _GROUP_ERROR.match(str(error))
    if match is None:
        return SettingsError(f"settings are not allowed together: {error}")
    return SettingsError(f"setting '{match['name']}' = {match['value']} is not allowed: it {match['rule']}")


# Settings of earlier versions: a cdk.json or `-c` still using one gets told the new key, not a guess.
RENAMED_SETTINGS: Final[dict[str, str]] = {
    "alarm_5xx_error_rate": "alarm_5xx_rate_threshold",
    "alarm_4xx_error_rate": "alarm_4xx_rate_threshold",
    "alarm_model_errors": "alarm_model_error_rate_threshold (a fraction of requests, not errors a minute)",
    "alarm_gpu_memory_percent": "alarm_gpu_memory_utilization_threshold_percent",
    "alarm_evaluation_minutes": "alarm_request_evaluation_periods (of alarm_request_period_seconds)",
    "alarm_datapoints": "alarm_request_datapoints_to_alarm",
    "alarm_latency_percentile": "alarm_latency_statistic (Average or Maximum: the SageMaker metric reference "
    "documents no percentile statistics for ModelLatency)",
}


def _unknown_setting_message(key: str, raw: Any, known: set[str]) -> str:
    if key in RENAMED_SETTINGS:
        return f"setting '{key}' = {raw!r} was renamed: use {RENAMED_SETTINGS[key]}"
    close = difflib.get_close_matches(key.replace("-", "_").lower(), sorted(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown setting '{key}' = {raw!r}{hint}; allowed settings: {', '.join(sorted(known))}"


def _bad(key: str, raw: Any, allowed: str) -> SettingsError:
    return SettingsError(f"setting '{key}' = {raw!r} is not allowed: expected {allowed}")


def _is_unset(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def _text(pattern: re.Pattern[str], allowed: str, *, optional: bool) -> Callable[[str, Any], str | None]:
    def parse(key: str, raw: Any) -> str | None:
        if optional and _is_unset(raw):
            return None
        if not isinstance(raw, str) or not pattern.match(raw.strip()):
            raise _bad(key, raw, allowed)
        return raw.strip()

    return parse


def _number[N: (int, float)](
    kind: type[N], low: N | None, high: N | None, allowed: str, *, optional: bool = False
) -> Callable[[str, Any], N | None]:
    def parse(key: str, raw: Any) -> N | None:
        if optional and _is_unset(raw):
            return None
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise _bad(key, raw, allowed)
        try:
            value = kind(raw.strip()) if isinstance(raw, str) else kind(raw)
        except ValueError:
            raise _bad(key, raw, allowed) from None
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise _bad(key, raw, allowed)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _bad(key, raw, allowed)
        return value

    return parse


def _flag(*, optional: bool) -> Callable[[str, Any], bool | None]:
    def parse(key: str, raw: Any) -> bool | None:
        if optional and _is_unset(raw):
            return None
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise _bad(key, raw, "true or false")

    return parse


def _ids(pattern: re.Pattern[str], allowed: str) -> Callable[[str, Any], tuple[str, ...]]:
    def parse(key: str, raw: Any) -> tuple[str, ...]:
        if _is_unset(raw):
            return ()
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise _bad(key, raw, f"a list (or comma-separated string) of {allowed}")
        cleaned = tuple(item.strip() for item in items if item.strip())
        if not all(pattern.match(item) for item in cleaned):
            raise _bad(key, raw, f"a list (or comma-separated string) of {allowed}")
        return cleaned

    return parse


def _choice(choices: Mapping[str, Any], what: str, *, optional: bool) -> Callable[[str, Any], str | None]:
    allowed = f"{what}, one of {', '.join(choices)}" + (", or empty" if optional else "")

    def parse(key: str, raw: Any) -> str | None:
        if optional and _is_unset(raw):
            return None
        if not isinstance(raw, str) or raw.strip() not in choices:
            raise _bad(key, raw, allowed)
        return raw.strip()

    return parse


def _smoke_mode(key: str, raw: Any) -> SmokeMode | None:
    if _is_unset(raw):
        return None
    for mode in SMOKE_MODES:
        if raw == mode:
            return mode
    allowed = ", ".join(f"'{mode}'" for mode in SMOKE_MODES)
    raise _bad(key, raw, f"one of {allowed} (unset: transcribe for a model package, else echo)")


_TIMEOUT = "an integer number of seconds from 60 to 3600"
_PARSERS: Final[dict[str, Callable[[str, Any], Any]]] = {
    "stack_name": _text(
        _STACK_NAME, "a CloudFormation stack name (letter, then letters/digits/-)", optional=False
    ),
    "endpoint_name": _text(
        SAGEMAKER_NAME_PATTERN, "1-63 letters, digits or hyphens, not starting/ending in -", optional=True
    ),
    "model_package_arn": _text(
        _MODEL_PACKAGE_ARN,
        "a model package ARN arn:aws:sagemaker:<region>:<account>:model-package/<name>",
        optional=True,
    ),
    "instance_type": _text(
        INSTANCE_TYPE_PATTERN, "an ML instance type such as ml.g6.2xlarge", optional=False
    ),
    "instance_count": _number(int, 1, None, "an integer >= 1"),
    "container_user": _text(
        _CONTAINER_USER, "root, or a numeric uid:gid such as 10001:10001 (uid 1-65535)", optional=False
    ),
    "variant_name": _text(
        SAGEMAKER_NAME_PATTERN, "1-63 letters, digits or hyphens, not starting/ending in -", optional=False
    ),
    "volume_size_gb": _number(int, 1, 512, "an integer from 1 to 512, or empty", optional=True),
    "container_startup_health_check_timeout_seconds": _number(int, 60, 3600, _TIMEOUT),
    "model_data_download_timeout_seconds": _number(int, 60, 3600, _TIMEOUT),
    "inference_ami_version": _choice(INFERENCE_AMI_ACCELERATORS, "an inference AMI version", optional=True),
    "kms_key_arn": _text(
        _KMS_KEY_ARN, "a KMS key ARN arn:aws:kms:<region>:<account>:key/<id>", optional=True
    ),
    "vpc_subnet_ids": _ids(_SUBNET_ID, "subnet IDs (subnet-0123abcd...)"),
    "vpc_security_group_ids": _ids(_SECURITY_GROUP_ID, "security group IDs (sg-0123abcd...)"),
    "network_isolation": _flag(optional=True),
    "alarm_email_addresses": _ids(EMAIL_PATTERN, "email addresses (name@example.com)"),
    "scaling_enabled": _flag(optional=False),
    "smoke_test": _flag(optional=False),
    "smoke_mode": _smoke_mode,
    "smoke_invocation_path": _text(
        _INVOCATION_PATH, "a path such as v1/listen (letters, digits, ._~/-)", optional=True
    ),
    "smoke_query_string": _text(
        _QUERY_STRING, "a query string such as model=nova-3&language=en", optional=True
    ),
    "smoke_budget_seconds": _number(int, 5, 600, "an integer number of seconds from 5 to 600"),
    "canary": _flag(optional=False),
    "canary_rate_minutes": _number(int, 1, 60, "an integer number of minutes from 1 to 60"),
}

# The groups' own fields are context keys too; their values are only converted here (text from `-c` to a
# number) and each group checks its own ranges, so the limits live beside the construct that needs them.
SETTING_GROUPS: Final[dict[str, type[AlarmSettings] | type[ScalingSettings] | type[DeploymentSettings]]] = {
    "alarms": AlarmSettings,
    "scaling": ScalingSettings,
    "deployment": DeploymentSettings,
}
_GROUP_WORD = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _group_field_parser(hint: Any) -> Callable[[str, Any], Any]:
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    optional = type(None) in members
    kind = next(member for member in members if member is not type(None))
    if kind is int:
        return _number(int, None, None, "an integer" + (", or empty" if optional else ""), optional=optional)
    if kind is float:
        return _number(float, None, None, "a number" + (", or empty" if optional else ""), optional=optional)
    return _text(_GROUP_WORD, "a word such as blue_green (see the settings table)", optional=optional)


for _group in SETTING_GROUPS.values():
    for _name, _hint in typing.get_type_hints(_group).items():
        _PARSERS[_name] = _group_field_parser(_hint)


def _check_cross_setting_rules(settings: Settings) -> None:
    """Rules that involve more than one setting, checked whenever a Settings object is made."""
    if not SAGEMAKER_NAME_PATTERN.match(settings.resolved_endpoint_name):
        raise SettingsError(
            f"setting 'endpoint_name' (unset, derived from stack_name {settings.stack_name!r}) = "
            f"{settings.resolved_endpoint_name!r} is not allowed: expected 1-63 letters, digits or hyphens, "
            "not starting/ending in -; set endpoint_name explicitly"
        )
    if settings.instance_type not in INSTANCE_SPECS:
        raise SettingsError(
            f"setting 'instance_type' = {settings.instance_type!r} is not allowed: alarm and dashboard "
            "thresholds are percent of the instance and need its vCPU and GPU counts; expected a size of one "
            f"of {known_instance_types()} (or add the type to INSTANCE_SPECS in stacks/instance_types.py)"
        )
    nvme = has_local_nvme(settings.instance_type)
    family = instance_family(settings.instance_type)
    if settings.kms_key_arn is not None and nvme:
        raise SettingsError(
            f"setting 'kms_key_arn' = {settings.kms_key_arn!r} is not allowed with instance_type "
            f"{settings.instance_type!r}: the {family} family has local NVMe storage, which SageMaker "
            "encrypts in hardware and for which CreateEndpointConfig rejects a KmsKeyId; "
            "expected no kms_key_arn, or an EBS-only instance type such as ml.c5.xlarge or ml.inf2.xlarge"
        )
    if settings.volume_size_gb is not None and nvme:
        raise SettingsError(
            f"setting 'volume_size_gb' = {settings.volume_size_gb!r} is not allowed with instance_type "
            f"{settings.instance_type!r}: the {family} family has local NVMe storage and no EBS volume to "
            "size; expected no volume_size_gb, or an EBS-only instance type"
        )
    if settings.inference_ami_version is not None:
        _check_inference_ami(settings.inference_ami_version, settings.instance_type)
    if bool(settings.vpc_subnet_ids) != bool(settings.vpc_security_group_ids):
        raise SettingsError(
            f"settings 'vpc_subnet_ids' = {list(settings.vpc_subnet_ids)!r} and 'vpc_security_group_ids' = "
            f"{list(settings.vpc_security_group_ids)!r} are not allowed: "
            "expected both set (VPC mode) or both empty"
        )
    if settings.uses_model_package and settings.network_isolation is False:
        raise SettingsError(
            f"setting 'network_isolation' = False is not allowed with model_package_arn "
            f"{settings.model_package_arn!r}: Marketplace model packages run with network isolation; "
            "expected true or unset"
        )
    if len(set(settings.alarm_email_addresses)) != len(settings.alarm_email_addresses):
        raise SettingsError(
            f"setting 'alarm_email_addresses' = {list(settings.alarm_email_addresses)!r} is not allowed: "
            "expected each address once"
        )
    if settings.uses_model_package:
        _check_package_deployment(settings.deployment)
    if settings.scaling_enabled:
        _check_scaling(settings)
    try:
        settings.deployment.check_instance_count(settings.instance_count)
        settings.deployment.maximum_execution_timeout_seconds(settings.instance_count)
        if settings.scaling_enabled:
            settings.deployment.check_scaled_instance_counts(
                settings.scaling.scaling_min_instances, settings.scaling.scaling_max_instances
            )
    except ValueError as error:
        raise _as_settings_error(error) from None


def _check_package_deployment(deployment: DeploymentSettings) -> None:
    # Deployment-guardrails "Exclusions": with "Marketplace containers" you "cannot use deployment
    # guardrails on your endpoint, and your endpoint will fall back to using a blue/green deployment with
    # all at once traffic shifting and no final baking period". The stack therefore sends no deployment
    # config for a package (that fallback is also SageMaker's default), and a deployment_* setting that
    # would silently not apply is refused.
    defaults = DeploymentSettings()
    for item in fields(DeploymentSettings):
        value, default = getattr(deployment, item.name), getattr(defaults, item.name)
        if value != default:
            raise SettingsError(
                f"setting '{item.name}' = {value!r} is not allowed with model_package_arn: SageMaker applies "
                "no deployment guardrails to Marketplace containers (an update falls back to blue/green, "
                "all at once, no baking, no auto-rollback alarms), so the stack sends no deployment config "
                f"for a package; expected the default ({default!r})"
            )


def _check_inference_ami(ami: str, instance_type: str) -> None:
    # SageMaker refuses an AMI whose drivers do not match the instance's accelerator, but only when the
    # endpoint is created or updated; say so at synth instead.
    fitting = inference_amis_for(instance_type)
    if ami in fitting:
        return
    kind = instance_spec(instance_type).accelerator_kind
    devices = "no accelerator" if kind is AcceleratorKind.NONE else f"{kind.value} devices"
    expected = f"one of {', '.join(fitting)}, or unset" if fitting else "unset (SageMaker's default AMI)"
    raise SettingsError(
        f"setting 'inference_ami_version' = {ami!r} is not allowed with instance_type {instance_type!r}: "
        f"the AMI is for {INFERENCE_AMI_ACCELERATORS[ami].value} instances and {instance_type} has "
        f"{devices}; expected {expected}"
    )


def _check_scaling(settings: Settings) -> None:
    scaling = settings.scaling
    if not scaling.scaling_min_instances <= settings.instance_count <= scaling.scaling_max_instances:
        raise SettingsError(
            f"setting 'instance_count' = {settings.instance_count!r} is not allowed with scaling on: "
            "expected "
            f"a count from scaling_min_instances ({scaling.scaling_min_instances}) to scaling_max_instances "
            f"({scaling.scaling_max_instances}), or scaling_enabled false"
        )
    if scaling.metric is ScalingMetric.GPU_UTILIZATION and not has_gpu(settings.instance_type):
        raise SettingsError(
            f"setting 'scaling_metric' = {scaling.scaling_metric!r} is not allowed with instance_type "
            f"{settings.instance_type!r}: it has no NVIDIA GPU to measure; expected "
            f"{ScalingMetric.CONCURRENT_REQUESTS_PER_MODEL.value} or "
            f"{ScalingMetric.INVOCATIONS_PER_INSTANCE.value}"
        )


# What each setting means, for the README table (``python -m stacks.settings`` prints it).
SETTING_DOCS: Final[dict[str, str]] = {
    "stack_name": "CloudFormation stack name; also the default endpoint name (lower-cased)",
    "endpoint_name": "SageMaker endpoint name, stable across updates (default: stack_name lower-cased)",
    "model_package_arn": "Marketplace model package ARN (e.g. Deepgram Nova-3); set = package mode, "
    "no image is built, network isolation is forced on",
    "instance_type": "Endpoint instance type (`ml.<family>.<size>`)",
    "instance_count": "Initial instance count (>= 1)",
    "container_user": "User our image runs as (build argument RUN_AS_USER): a numeric uid:gid, or `root`. "
    "SageMaker's container contract expects root and no AWS document says it serves non-root images; "
    "set `root` if an endpoint fails on file permissions. Ignored for a model package",
    "variant_name": "Production variant name; in effect fixed after the first deploy: deployment "
    "guardrails need the new endpoint config to keep it, and it is part of the scalable target's "
    "ResourceId (a change replaces the target)",
    "volume_size_gb": "EBS volume per instance, 1-512 GB; refused for NVMe families (g5, g6, p4d, ...)",
    "container_startup_health_check_timeout_seconds": "How long `/ping` may take to pass, 60-3600 s",
    "model_data_download_timeout_seconds": "Model data download timeout, 60-3600 s",
    "inference_ami_version": "Inference AMI (driver set) for the instances, one CloudFormation accepts and "
    "fitting the accelerator: `al2-ami-sagemaker-inference-gpu-2`, `-gpu-2-1`, `-gpu-3-1` or "
    "`al2023-ami-sagemaker-inference-gpu-4-1` for NVIDIA GPU types, `al2-ami-sagemaker-inference-neuron-2` "
    "for inf2, none for CPU types; unset = SageMaker's default; Deepgram's deploy scripts use "
    "`al2023-ami-sagemaker-inference-gpu-4-1`",
    "kms_key_arn": "KMS key for the endpoint's storage volume; refused for NVMe families "
    "(SageMaker rejects it). Its key policy must allow the principal that calls CreateEndpoint/"
    "UpdateEndpoint: the CDK bootstrap's CloudFormation execution role (`cdk-hnb659fds-cfn-exec-role-*`). "
    "The model's execution role is also granted use of this key, and of no other",
    "vpc_subnet_ids": "Subnets for the model container (list or comma-separated); "
    "needs vpc_security_group_ids",
    "vpc_security_group_ids": "Security groups for the model container; needs vpc_subnet_ids",
    "network_isolation": "No network for the container; unset = off for our image, forced on for a package",
    "alarm_email_addresses": "Email addresses subscribed to the (KMS-encrypted) alarm topic, list or "
    "comma-separated; each confirms by mail. Empty = topic only, subscribe pagers yourself",
    "alarm_request_period_seconds": "Period of the request alarms (error rates, latencies), s, whole minutes",
    "alarm_request_evaluation_periods": "Request alarms look back this many periods",
    "alarm_request_datapoints_to_alarm": "Breaching periods within the look-back that raise a request alarm",
    "alarm_5xx_rate_threshold": "5XX error rate (fraction of requests, Average of Invocation5XXErrors) that "
    "alarms; its new-fleet copy (EndpointConfigName of the config being deployed) is an auto-rollback alarm",
    "alarm_4xx_rate_threshold": "4XX error rate (fraction of requests) that alarms; mostly client mistakes",
    "alarm_model_error_rate_threshold": "Model error rate (fraction of requests, InvocationModelErrors) "
    "that alarms",
    "alarm_latency_statistic": "Statistic of both latency alarms, `Average` or `Maximum` (the SageMaker "
    "metric reference documents no percentiles for ModelLatency)",
    "alarm_model_latency_threshold_ms": "ModelLatency (ms; published in µs) that alarms; its new-fleet copy "
    "is an auto-rollback alarm; empty = no alarm (if a live endpoint shows it measures whole streams)",
    "alarm_first_chunk_latency_threshold_ms": "FirstChunkLatency (ms) that alarms; its new-fleet copy is an "
    "auto-rollback alarm when set; empty = no alarm (metric not in the SageMaker reference yet)",
    "alarm_resource_period_seconds": "Period of the resource alarms (CPU, memory, GPU, disk), s",
    "alarm_resource_evaluation_periods": "Resource alarms look back this many periods",
    "alarm_resource_datapoints_to_alarm": "Breaching periods within the look-back that raise a resource "
    "alarm",
    "alarm_cpu_utilization_threshold_percent": "CPU, % of the whole instance (scaled by its vCPU count)",
    "alarm_memory_utilization_threshold_percent": "Host memory of the fullest instance, %",
    "alarm_gpu_utilization_threshold_percent": "GPU, % of all the instance's GPUs; GPU instance types only",
    "alarm_gpu_memory_utilization_threshold_percent": "GPU memory of the fullest instance, % of all its "
    "GPUs; "
    "GPU instance types only",
    "alarm_disk_utilization_threshold_percent": "Storage volume of the fullest instance, %",
    "alarm_no_traffic_minutes": "Alarm when not one invocation arrives in this many minutes (5-1440); "
    "empty = no alarm",
    "scaling_enabled": "Application Auto Scaling of the variant's instance count; on, an update keeps the "
    "scaled count (RetainAllVariantProperties), so a stepped update must fit every count from "
    "scaling_min_instances to scaling_max_instances. Changing instance_type takes three deploys: "
    "scaling_enabled=false, then the new type, then scaling back on",
    "scaling_min_instances": "Fewest instances (>= 1; instance_count must lie within min..max)",
    "scaling_max_instances": "Most instances (<= 100)",
    "scaling_metric": "`concurrent_requests_per_model` (open streams per instance), "
    "`invocations_per_instance` or `gpu_utilization`",
    "scaling_target_value": "Target of the metric (streams, invocations a minute, or % of the GPUs); "
    "empty = 4, 30 or 60 by metric",
    "scaling_scale_out_cooldown_seconds": "Wait after a scale-out before another, s",
    "scaling_scale_in_cooldown_seconds": "Wait after a scale-in before another, s (1800 = the longest "
    "stream)",
    "deployment_strategy": "Endpoint updates: `blue_green` (new fleet, then shift) or `rolling` (batches); "
    "a model package takes no deployment_* setting: SageMaker applies no guardrails to Marketplace "
    "containers, so the stack sends no deployment config (blue/green, all at once, no baking)",
    "deployment_traffic_shifting": "Blue/green: `ALL_AT_ONCE`, `CANARY` or `LINEAR`",
    "deployment_step_unit": "Unit of the step size: `CAPACITY_PERCENT` or `INSTANCE_COUNT`",
    "deployment_step_size": "Canary size, linear step or rolling batch; empty for ALL_AT_ONCE, required "
    "otherwise (needs instance_count >= 2 and, with scaling on, scaling_min_instances >= 2)",
    "deployment_wait_interval_seconds": "Baking time after each step while the rollback alarms are watched, "
    "0-3600 s",
    "deployment_termination_wait_seconds": "Blue/green: how long the old fleet keeps serving its streams, "
    "0-3600 s; empty = 1800",
    "deployment_maximum_execution_timeout_seconds": "Roll back an update that takes longer, 600-28800 s; "
    "empty = the configured waits plus an hour; with scaling on, the waits of the largest fleet",
    "deployment_rollback_batch_size": "Rolling: batch size when rolling back; empty = all at once",
    "smoke_test": "Run the post-deploy smoke test (a CDK trigger that fails the deployment)",
    "smoke_mode": "`echo`, `transcribe` or `speak` (a sentence must come back as audio of plausible "
    "length); unset = transcribe for a package, echo for our image",
    "smoke_invocation_path": "Invocation path for the smoke stream (unset: `v1/listen` when transcribing, "
    "`v1/speak` when speaking)",
    "smoke_query_string": "Query string for the smoke stream (unset: "
    f"`{SPEAK_QUERY_STRING}` when speaking, `{MARKETPLACE_QUERY_STRING}` for a package)",
    "smoke_budget_seconds": "Time budget for the whole smoke check (retries of transient failures "
    "included), 5-600 s; the trigger's timeout is set above it, the canary's budget is capped at its "
    "interval minus 20 s so runs never overlap",
    "canary": "Run the streaming canary: the smoke check on a schedule, publishing StreamSuccess/"
    "StreamFailure metrics; its alarm pages and is an auto-rollback alarm of the endpoint",
    "canary_rate_minutes": "How often the canary streams, 1-60 min (the alarm's period)",
}


def settings_table() -> str:
    """The README settings table, generated from the code so the two cannot drift."""
    lines = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for name, value in setting_defaults().items():
        shown = (
            "(unset)"
            if value is None or value == ()
            else f"`{str(value).lower() if isinstance(value, bool) else value}`"
        )
        lines.append(f"| `{name}` | {shown} | {SETTING_DOCS[name]} |")
    return "\n".join(lines)


def setting_defaults() -> dict[str, Any]:
    """Every context key with its default, in table order; the groups are flattened into their keys."""
    defaults = Settings()
    flat: dict[str, Any] = {}
    for item in fields(Settings):
        value = getattr(defaults, item.name)
        if item.name in SETTING_GROUPS:
            flat.update({member.name: getattr(value, member.name) for member in fields(value)})
        else:
            flat[item.name] = value
    return flat


if __name__ == "__main__":
    print(settings_table())
