"""The app's settings: one frozen, typed object built from CDK context and validated once.

Settings come from ``cdk.json`` context and ``-c key=value`` on the CDK command line. Every setting
is a snake_case context key. CDK's own keys contain ``@``, ``:`` or ``-`` (``@aws-cdk/...``,
``aws:cdk:...``, ``cli-telemetry``), so a key of only letters, digits and underscores that is not a
setting is a typo and is refused, as is a hyphenated spelling of a setting (``instance-type``).
A bad value fails synth with a message naming the setting, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

SmokeMode = Literal["echo", "transcribe"]

DEFAULT_INSTANCE_TYPE: Final = "ml.g6.2xlarge"
# Deepgram's SageMaker listing serves Nova-3 here; our own speech model speaks the same messages.
SPEECH_INVOCATION_PATH: Final = "v1/listen"
# The smoke clip goes as raw 16 kHz 16-bit PCM, which Deepgram decodes only when told the encoding.
MARKETPLACE_QUERY_STRING: Final = "model=nova-3&encoding=linear16&sample_rate=16000"

_SETTINGS_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
# SageMaker names (endpoint, variant): alphanumerics and single or repeated hyphens, 1-63 chars.
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_INSTANCE_TYPE = re.compile(
    r"^ml\.(?P<family>[a-z]+[0-9]+[a-z0-9]*(-[a-z0-9]+)?)\.(?P<size>[0-9]*x?large|medium)$"
)
_MODEL_PACKAGE_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:sagemaker:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:model-package/"
    r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}(/[0-9]+)?$"
)
_KMS_KEY_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$"
)
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")
_INFERENCE_AMI_VERSION = re.compile(r"^al2[0-9]*-ami-sagemaker-inference-[a-z0-9]+(-[0-9]+)*$")
_INVOCATION_PATH = re.compile(r"^[A-Za-z0-9._~/-]{1,100}$")
_QUERY_STRING = re.compile(r"^[A-Za-z0-9._~=&%+-]{1,2048}$")

# Families whose instances carry local NVMe storage: SageMaker encrypts it in hardware and refuses
# an endpoint-config KmsKeyId or VolumeSizeInGB for them. "d" families (m5d, c6id, g4dn, p4de) plus
# the accelerated families that come with instance store although their names have no "d".
_NVME_FAMILIES: Final = frozenset(
    {"g5", "g6", "g6e", "g7e", "p5", "p5e", "p5en", "p6-b200", "p6e-gb200", "trn1", "trn1n", "trn2", "trn2n"}
)
_D_FAMILY = re.compile(r"^[a-z]+[0-9]+[a-z]*d[a-z]*$")
_GPU_FAMILY = re.compile(r"^[gp][0-9]")


class SettingsError(ValueError):
    """A setting has a value the app cannot deploy; the message names the setting and what is allowed."""


def instance_family(instance_type: str) -> str:
    """``ml.g6.2xlarge`` -> ``g6``."""
    match = _INSTANCE_TYPE.match(instance_type)
    if match is None:
        raise SettingsError(f"setting 'instance_type' = {instance_type!r} is not an ML instance type")
    return match.group("family")


def has_local_nvme(instance_type: str) -> bool:
    """Whether the instance type's family has local NVMe storage (no KmsKeyId, no VolumeSizeInGB)."""
    family = instance_family(instance_type)
    return family in _NVME_FAMILIES or _D_FAMILY.match(family) is not None


def has_gpu(instance_type: str) -> bool:
    """Whether the instance type is a GPU (g*, p*) instance, so GPU metrics exist for it."""
    return _GPU_FAMILY.match(instance_family(instance_type)) is not None


@dataclass(frozen=True)
class Settings:
    """Every knob of the deployment; build it with :meth:`from_context`, never by hand in app code."""

    stack_name: str = "BidiStream"
    endpoint_name: str | None = None
    model_package_arn: str | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    variant_name: str = "AllTraffic"
    volume_size_gb: int | None = None
    container_startup_health_check_timeout_seconds: int = 600
    model_data_download_timeout_seconds: int = 600
    inference_ami_version: str | None = None
    kms_key_arn: str | None = None
    vpc_subnet_ids: tuple[str, ...] = ()
    vpc_security_group_ids: tuple[str, ...] = ()
    network_isolation: bool | None = None
    alarm_5xx_error_rate: float = 0.05
    alarm_4xx_error_rate: float = 0.25
    alarm_model_errors: int = 5
    alarm_gpu_memory_percent: float = 90.0
    alarm_evaluation_minutes: int = 5
    alarm_datapoints: int = 3
    smoke_test: bool = True
    smoke_mode: SmokeMode | None = None
    smoke_invocation_path: str | None = None
    smoke_query_string: str | None = None
    smoke_budget_seconds: int = 60

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
        return SPEECH_INVOCATION_PATH if self.resolved_smoke_mode == "transcribe" else None

    @property
    def resolved_smoke_query_string(self) -> str | None:
        if self.smoke_query_string is not None:
            return self.smoke_query_string
        return MARKETPLACE_QUERY_STRING if self.uses_model_package else None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Settings:
        """Build settings from CDK context (cdk.json and ``-c``); raise ``SettingsError`` on a bad one."""
        known = {item.name for item in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in sorted(context.items()):
            if not _SETTINGS_NAMESPACE.match(key) and key.replace("-", "_") not in known:
                continue  # CDK's own context: feature flags, aws:cdk:*, cli-telemetry, lookups
            if key not in known:
                raise SettingsError(_unknown_setting_message(key, raw, known))
            values[key] = _PARSERS[key](key, raw)
        return cls(**values)


def _unknown_setting_message(key: str, raw: Any, known: set[str]) -> str:
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
    kind: type[N], low: N, high: N | None, allowed: str, *, optional: bool = False
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
        if value < low or (high is not None and value > high):
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


def _smoke_mode(key: str, raw: Any) -> SmokeMode | None:
    if _is_unset(raw):
        return None
    if raw == "echo":
        return "echo"
    if raw == "transcribe":
        return "transcribe"
    raise _bad(key, raw, "'echo' or 'transcribe' (unset: transcribe for a model package, else echo)")


_TIMEOUT = "an integer number of seconds from 60 to 3600"
_PARSERS: Final[dict[str, Callable[[str, Any], Any]]] = {
    "stack_name": _text(
        _STACK_NAME, "a CloudFormation stack name (letter, then letters/digits/-)", optional=False
    ),
    "endpoint_name": _text(
        _SAGEMAKER_NAME, "1-63 letters, digits or hyphens, not starting/ending in -", optional=True
    ),
    "model_package_arn": _text(
        _MODEL_PACKAGE_ARN,
        "a model package ARN arn:aws:sagemaker:<region>:<account>:model-package/<name>",
        optional=True,
    ),
    "instance_type": _text(_INSTANCE_TYPE, "an ML instance type such as ml.g6.2xlarge", optional=False),
    "instance_count": _number(int, 1, None, "an integer >= 1"),
    "variant_name": _text(
        _SAGEMAKER_NAME, "1-63 letters, digits or hyphens, not starting/ending in -", optional=False
    ),
    "volume_size_gb": _number(int, 1, 512, "an integer from 1 to 512, or empty", optional=True),
    "container_startup_health_check_timeout_seconds": _number(int, 60, 3600, _TIMEOUT),
    "model_data_download_timeout_seconds": _number(int, 60, 3600, _TIMEOUT),
    "inference_ami_version": _text(
        _INFERENCE_AMI_VERSION,
        "an inference AMI version such as al2023-ami-sagemaker-inference-gpu-4-1",
        optional=True,
    ),
    "kms_key_arn": _text(
        _KMS_KEY_ARN, "a KMS key ARN arn:aws:kms:<region>:<account>:key/<id>", optional=True
    ),
    "vpc_subnet_ids": _ids(_SUBNET_ID, "subnet IDs (subnet-0123abcd...)"),
    "vpc_security_group_ids": _ids(_SECURITY_GROUP_ID, "security group IDs (sg-0123abcd...)"),
    "network_isolation": _flag(optional=True),
    "alarm_5xx_error_rate": _number(float, 0.0, 1.0, "a fraction of invocations from 0 to 1"),
    "alarm_4xx_error_rate": _number(float, 0.0, 1.0, "a fraction of invocations from 0 to 1"),
    "alarm_model_errors": _number(int, 1, None, "an integer number of errors per minute >= 1"),
    "alarm_gpu_memory_percent": _number(float, 1.0, 100.0, "a percentage from 1 to 100"),
    "alarm_evaluation_minutes": _number(int, 1, 60, "an integer number of minutes from 1 to 60"),
    "alarm_datapoints": _number(int, 1, 60, "an integer from 1 to alarm_evaluation_minutes"),
    "smoke_test": _flag(optional=False),
    "smoke_mode": _smoke_mode,
    "smoke_invocation_path": _text(
        _INVOCATION_PATH, "a path such as v1/listen (letters, digits, ._~/-)", optional=True
    ),
    "smoke_query_string": _text(
        _QUERY_STRING, "a query string such as model=nova-3&language=en", optional=True
    ),
    "smoke_budget_seconds": _number(int, 5, 600, "an integer number of seconds from 5 to 600"),
}


def _check_cross_setting_rules(settings: Settings) -> None:
    """Rules that involve more than one setting, checked whenever a Settings object is made."""
    if not _SAGEMAKER_NAME.match(settings.resolved_endpoint_name):
        raise SettingsError(
            f"setting 'endpoint_name' (unset, derived from stack_name {settings.stack_name!r}) = "
            f"{settings.resolved_endpoint_name!r} is not allowed: expected 1-63 letters, digits or hyphens, "
            "not starting/ending in -; set endpoint_name explicitly"
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
    if settings.alarm_datapoints > settings.alarm_evaluation_minutes:
        raise SettingsError(
            f"setting 'alarm_datapoints' = {settings.alarm_datapoints!r} is not allowed: expected an integer "
            f"from 1 to alarm_evaluation_minutes ({settings.alarm_evaluation_minutes})"
        )


# What each setting means, for the README table (``python -m stacks.settings`` prints it).
SETTING_DOCS: Final[dict[str, str]] = {
    "stack_name": "CloudFormation stack name; also the default endpoint name (lower-cased)",
    "endpoint_name": "SageMaker endpoint name, stable across updates (default: stack_name lower-cased)",
    "model_package_arn": "Marketplace model package ARN (e.g. Deepgram Nova-3); set = package mode, "
    "no image is built, network isolation is forced on",
    "instance_type": "Endpoint instance type (`ml.<family>.<size>`)",
    "instance_count": "Initial instance count (>= 1)",
    "variant_name": "Production variant name",
    "volume_size_gb": "EBS volume per instance, 1-512 GB; refused for NVMe families (g5, g6, p4d, ...)",
    "container_startup_health_check_timeout_seconds": "How long `/ping` may take to pass, 60-3600 s",
    "model_data_download_timeout_seconds": "Model data download timeout, 60-3600 s",
    "inference_ami_version": "Inference AMI (GPU driver/CUDA set) for the instances; unset = SageMaker's "
    "default; Deepgram's deploy scripts use `al2023-ami-sagemaker-inference-gpu-4-1`",
    "kms_key_arn": "KMS key for the endpoint's storage volume; refused for NVMe families "
    "(SageMaker rejects it); the execution role gets use of this key only",
    "vpc_subnet_ids": "Subnets for the model container (list or comma-separated); "
    "needs vpc_security_group_ids",
    "vpc_security_group_ids": "Security groups for the model container; needs vpc_subnet_ids",
    "network_isolation": "No network for the container; unset = off for our image, forced on for a package",
    "alarm_5xx_error_rate": "Alarm when the 5XX error rate (Average of Invocation5XXErrors) exceeds this",
    "alarm_4xx_error_rate": "Alarm when the 4XX error rate (Average of Invocation4XXErrors) exceeds this",
    "alarm_model_errors": "Alarm when InvocationModelErrors per minute (Sum) reach this",
    "alarm_gpu_memory_percent": "Alarm when GPUMemoryUtilization (Maximum, % summed over GPUs) exceeds "
    "this; GPU instance types only",
    "alarm_evaluation_minutes": "Alarm evaluation window, in one-minute periods",
    "alarm_datapoints": "Breaching minutes within the window that raise an alarm",
    "smoke_test": "Run the post-deploy smoke test (a CDK trigger that fails the deployment)",
    "smoke_mode": "`echo` or `transcribe`; unset = transcribe for a package, echo for our image",
    "smoke_invocation_path": "Invocation path for the smoke stream (unset: `v1/listen` when transcribing)",
    "smoke_query_string": "Query string for the smoke stream (unset: "
    "`model=nova-3&encoding=linear16&sample_rate=16000` for a package)",
    "smoke_budget_seconds": "Time budget for the whole smoke check, 5-600 s",
}


def settings_table() -> str:
    """The README settings table, generated from the code so the two cannot drift."""
    defaults = Settings()
    lines = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for item in fields(Settings):
        value = getattr(defaults, item.name)
        shown = (
            "(unset)"
            if value is None or value == ()
            else f"`{str(value).lower() if isinstance(value, bool) else value}`"
        )
        lines.append(f"| `{item.name}` | {shown} | {SETTING_DOCS[item.name]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
