"""Settings: defaults, parsing of cdk.json / -c values, and one refusal per kind of bad setting."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from stacks.instance_types import INFERENCE_AMI_ACCELERATORS, has_gpu, has_local_nvme
from stacks.settings import (
    DEFAULT_INSTANCE_TYPE,
    MARKETPLACE_QUERY_STRING,
    RENAMED_SETTINGS,
    SETTING_DOCS,
    SETTING_GROUPS,
    SMOKE_MODES,
    SPEAK_INVOCATION_PATH,
    SPEAK_QUERY_STRING,
    SPEECH_INVOCATION_PATH,
    Settings,
    SettingsError,
    setting_defaults,
)
from tests.unit.conftest import KMS_KEY_ARN, PACKAGE_ARN

REPO_ROOT = Path(__file__).resolve().parents[2]


def refused(context: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_context(context)
    return str(caught.value)


def test_defaults_are_a_gpu_byoc_echo_endpoint_named_after_the_stack() -> None:
    settings = Settings.from_context({})
    assert settings.instance_type == DEFAULT_INSTANCE_TYPE == "ml.g6.2xlarge"
    assert settings.instance_count == 1
    assert settings.resolved_endpoint_name == "bidistream"
    assert not settings.uses_model_package
    assert settings.resolved_network_isolation is False
    assert settings.resolved_smoke_mode == "echo"
    assert settings.resolved_smoke_invocation_path is None


def test_command_line_strings_are_parsed_to_typed_values() -> None:
    settings = Settings.from_context(
        {
            "instance_type": "ml.c5.xlarge",
            "instance_count": "3",
            "volume_size_gb": "40",
            "network_isolation": "true",
            "smoke_test": "false",
            "alarm_5xx_rate_threshold": "0.1",
            "alarm_model_latency_threshold_ms": "",
            "alarm_email_addresses": "oncall@example.com,team@example.com",
            "scaling_min_instances": "2",
            "scaling_max_instances": "6",
            "deployment_strategy": "rolling",
            "deployment_step_size": "50",
            "vpc_subnet_ids": "subnet-0123abcd, subnet-4567ef01",
            "vpc_security_group_ids": "sg-0123abcd",
            "kms_key_arn": KMS_KEY_ARN,
        }
    )
    assert settings.instance_count == 3
    assert settings.volume_size_gb == 40
    assert settings.network_isolation is True
    assert settings.smoke_test is False
    assert settings.alarms.alarm_5xx_rate_threshold == 0.1
    assert settings.alarms.alarm_model_latency_threshold_ms is None
    assert settings.alarm_email_addresses == ("oncall@example.com", "team@example.com")
    assert settings.scaling.scaling_max_instances == 6
    assert (settings.deployment.deployment_strategy, settings.deployment.deployment_step_size) == (
        "rolling",
        50,
    )
    assert settings.vpc_subnet_ids == ("subnet-0123abcd", "subnet-4567ef01")


def test_cdk_context_keys_that_are_not_settings_are_ignored() -> None:
    settings = Settings.from_context(
        {"@aws-cdk/core:checkSecretUsage": True, "aws:cdk:bundling-stacks": [], "cli-telemetry": False}
    )
    assert settings == Settings()


def test_cdk_json_settings_are_valid_and_every_documented_setting_exists() -> None:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    Settings.from_context(context)
    assert set(SETTING_DOCS) == set(setting_defaults())
    # Every field of every group is a context key (and none of the group names is).
    group_fields = {item.name for group in SETTING_GROUPS.values() for item in fields(group)}
    assert group_fields <= set(setting_defaults()) and not set(SETTING_GROUPS) & set(setting_defaults())


def test_model_package_switches_to_isolated_transcription_with_nova_3_query() -> None:
    settings = Settings.from_context({"model_package_arn": PACKAGE_ARN})
    assert settings.uses_model_package
    assert settings.resolved_network_isolation is True
    assert settings.resolved_smoke_mode == "transcribe"
    assert settings.resolved_smoke_invocation_path == "v1/listen"
    assert settings.resolved_smoke_query_string == "model=nova-3&encoding=linear16&sample_rate=16000"


def test_our_speech_model_can_be_smoke_tested_by_transcription() -> None:
    settings = Settings.from_context({"smoke_mode": "transcribe"})
    assert settings.resolved_smoke_invocation_path == "v1/listen"
    assert settings.resolved_smoke_query_string is None


def test_our_speak_model_can_be_smoke_tested_by_speaking() -> None:
    settings = Settings.from_context({"smoke_mode": "speak"})
    assert settings.resolved_smoke_mode == "speak"
    assert settings.resolved_smoke_invocation_path == "v1/speak"
    assert settings.resolved_smoke_query_string == (
        "model=aura-2-thalia-en&encoding=linear16&sample_rate=24000"
    )
    # A Deepgram Aura package speaks the same protocol: the speak query, not Nova-3's.
    package = Settings.from_context({"smoke_mode": "speak", "model_package_arn": PACKAGE_ARN})
    assert package.resolved_smoke_query_string == settings.resolved_smoke_query_string
    chosen = Settings.from_context(
        {"smoke_mode": "speak", "smoke_invocation_path": "tts", "smoke_query_string": "encoding=mulaw"}
    )
    assert (chosen.resolved_smoke_invocation_path, chosen.resolved_smoke_query_string) == (
        "tts",
        "encoding=mulaw",
    )


def test_smoke_modes_and_speak_defaults_are_the_smoke_checks() -> None:
    # stacks does not import the check (it needs the SDK); the two lists must still be one.
    from bidistream import smoke

    assert SMOKE_MODES == smoke.MODES
    assert (SPEAK_INVOCATION_PATH, SPEAK_QUERY_STRING) == (smoke.SPEAK_PATH, smoke.SPEAK_QUERY)
    assert (SPEECH_INVOCATION_PATH, MARKETPLACE_QUERY_STRING) == (
        smoke.TRANSCRIBE_PATH,
        smoke.TRANSCRIBE_QUERY,
    )


@pytest.mark.parametrize(
    ("instance_type", "nvme", "gpu"),
    [
        ("ml.g6.2xlarge", True, True),
        ("ml.g5.xlarge", True, True),
        ("ml.g4dn.xlarge", True, True),
        ("ml.p4d.24xlarge", True, True),
        ("ml.m5d.large", True, False),
        ("ml.c5.xlarge", False, False),
        ("ml.inf2.xlarge", False, False),
        ("ml.p3.2xlarge", False, True),
    ],
)
def test_instance_families_are_classified(instance_type: str, nvme: bool, gpu: bool) -> None:
    assert has_local_nvme(instance_type) is nvme
    assert has_gpu(instance_type) is gpu


def test_unknown_instance_type_pattern_is_refused() -> None:
    message = refused({"instance_type": "g6.2xlarge"})
    assert "setting 'instance_type' = 'g6.2xlarge'" in message
    assert "expected an ML instance type such as ml.g6.2xlarge" in message


def test_instance_count_below_one_is_refused() -> None:
    message = refused({"instance_count": "0"})
    assert "setting 'instance_count' = '0'" in message
    assert "expected an integer >= 1" in message


def test_non_integer_instance_count_is_refused() -> None:
    assert "setting 'instance_count' = 1.5" in refused({"instance_count": 1.5})


def test_malformed_model_package_arn_is_refused() -> None:
    message = refused({"model_package_arn": "arn:aws:sagemaker:eu-west-1:123:model/oops"})
    assert "setting 'model_package_arn' = 'arn:aws:sagemaker:eu-west-1:123:model/oops'" in message
    assert "model-package/<name>" in message


def test_malformed_kms_key_arn_is_refused() -> None:
    message = refused({"kms_key_arn": "alias/my-key", "instance_type": "ml.c5.xlarge"})
    assert "setting 'kms_key_arn' = 'alias/my-key'" in message
    assert "a KMS key ARN" in message


def test_kms_key_on_an_nvme_instance_is_refused() -> None:
    message = refused({"kms_key_arn": KMS_KEY_ARN})
    assert f"setting 'kms_key_arn' = '{KMS_KEY_ARN}'" in message
    assert "instance_type 'ml.g6.2xlarge'" in message
    assert "local NVMe storage" in message
    assert "EBS-only instance type" in message


def test_kms_key_on_an_ebs_instance_is_accepted() -> None:
    assert Settings.from_context({"kms_key_arn": KMS_KEY_ARN, "instance_type": "ml.p3.2xlarge"}).kms_key_arn


def test_volume_size_on_an_nvme_instance_is_refused() -> None:
    message = refused({"volume_size_gb": 100})
    assert "setting 'volume_size_gb' = 100" in message
    assert "local NVMe storage" in message


def test_unknown_key_is_refused_with_a_suggestion() -> None:
    message = refused({"instance_typ": "ml.g6.2xlarge"})
    assert "unknown setting 'instance_typ' = 'ml.g6.2xlarge'" in message
    assert "did you mean 'instance_type'?" in message
    assert "allowed settings:" in message and "smoke_budget_seconds" in message


@pytest.mark.parametrize(
    ("key", "suggestion"), [("instance-type", "instance_type"), ("instanceCount", "instance_count")]
)
def test_hyphenated_or_camel_case_spelling_is_refused_with_the_right_name(key: str, suggestion: str) -> None:
    assert f"did you mean '{suggestion}'?" in refused({key: "x"})


def test_half_a_vpc_is_refused() -> None:
    message = refused({"vpc_subnet_ids": "subnet-0123abcd"})
    assert "'vpc_subnet_ids' = ['subnet-0123abcd']" in message
    assert "expected both set (VPC mode) or both empty" in message


def test_malformed_subnet_id_is_refused() -> None:
    message = refused({"vpc_subnet_ids": ["subnet-XYZ"], "vpc_security_group_ids": ["sg-0123abcd"]})
    assert "setting 'vpc_subnet_ids' = ['subnet-XYZ']" in message


def test_network_isolation_off_for_a_model_package_is_refused() -> None:
    message = refused({"model_package_arn": PACKAGE_ARN, "network_isolation": "false"})
    assert "setting 'network_isolation' = False" in message
    assert "expected true or unset" in message


def test_bad_boolean_is_refused() -> None:
    assert "setting 'smoke_test' = 'yes' is not allowed: expected true or false" in refused(
        {"smoke_test": "yes"}
    )


@pytest.mark.parametrize("mode", ["ping", "Speak", "tts"])
def test_bad_smoke_mode_is_refused_naming_the_modes(mode: str) -> None:
    message = refused({"smoke_mode": mode})
    assert f"setting 'smoke_mode' = '{mode}'" in message
    assert "one of 'echo', 'transcribe', 'speak'" in message


def test_out_of_range_timeout_is_refused() -> None:
    message = refused({"container_startup_health_check_timeout_seconds": 30})
    assert "setting 'container_startup_health_check_timeout_seconds' = 30" in message
    assert "from 60 to 3600" in message


def test_error_rate_above_one_is_refused() -> None:
    message = refused({"alarm_5xx_rate_threshold": 5})
    assert (
        "setting 'alarm_5xx_rate_threshold' = 5.0 is not allowed: it must be a fraction between 0 and 1"
        in (message)
    )


def test_text_for_a_number_in_a_group_is_refused() -> None:
    message = refused({"scaling_max_instances": "many"})
    assert "setting 'scaling_max_instances' = 'many' is not allowed: expected an integer" in message


def test_more_datapoints_than_the_window_is_refused() -> None:
    message = refused({"alarm_request_datapoints_to_alarm": 6, "alarm_request_evaluation_periods": 5})
    assert "setting 'alarm_request_datapoints_to_alarm' = 6" in message
    assert "alarm_request_evaluation_periods (5)" in message


def test_renamed_alarm_settings_point_to_the_new_ones() -> None:
    message = refused({"alarm_5xx_error_rate": "0.1"})
    assert message == "setting 'alarm_5xx_error_rate' = '0.1' was renamed: use alarm_5xx_rate_threshold"
    assert "a fraction of requests, not errors" in refused({"alarm_model_errors": 5})
    # Every rename points at a setting that exists.
    assert {new.split()[0] for new in RENAMED_SETTINGS.values()} <= set(setting_defaults())


def test_bad_email_address_is_refused() -> None:
    message = refused({"alarm_email_addresses": "oncall@example.com,not-an-address"})
    assert "setting 'alarm_email_addresses'" in message and "email addresses" in message


def test_repeated_email_address_is_refused() -> None:
    message = refused({"alarm_email_addresses": "a@example.com,a@example.com"})
    assert "setting 'alarm_email_addresses'" in message and "each address once" in message


def test_instance_count_outside_the_scaling_bounds_is_refused() -> None:
    message = refused({"instance_count": 5, "scaling_max_instances": 4})
    assert "setting 'instance_count' = 5 is not allowed with scaling on" in message
    assert Settings.from_context({"instance_count": 5, "scaling_enabled": "false"}).instance_count == 5


def test_gpu_scaling_metric_on_a_cpu_instance_is_refused() -> None:
    message = refused({"instance_type": "ml.c5.xlarge", "scaling_metric": "gpu_utilization"})
    assert "setting 'scaling_metric' = 'gpu_utilization'" in message and "no NVIDIA GPU" in message


def test_bad_deployment_strategy_is_refused() -> None:
    message = refused({"deployment_strategy": "big_bang"})
    assert "setting 'deployment_strategy' = 'big_bang'" in message and "blue_green, rolling" in message


def test_stepped_update_of_one_instance_is_refused() -> None:
    message = refused({"deployment_traffic_shifting": "CANARY", "deployment_step_size": 50})
    assert "instance_count=1" in message and "ALL_AT_ONCE" in message


def test_stepped_update_of_a_fleet_scaled_in_to_one_instance_is_refused() -> None:
    # Scaling keeps the scaled count through updates, so the next canary may start from 1 instance.
    canary = {"instance_count": 2, "deployment_traffic_shifting": "CANARY", "deployment_step_size": 50}
    message = refused(canary)
    assert "scaling_min_instances=1" in message and "at 1 instance(s)" in message and "CANARY" in message
    # The twins: the same canary with at least 2 instances at every size, or with scaling off, is accepted.
    assert Settings.from_context({**canary, "scaling_min_instances": 2}).deployment.stepped == "CANARY"
    assert Settings.from_context({**canary, "scaling_enabled": "false"}).instance_count == 2


def test_linear_steps_too_small_for_the_largest_scaled_fleet_are_refused() -> None:
    linear = {
        "instance_count": 2,
        "scaling_min_instances": 2,
        "deployment_traffic_shifting": "LINEAR",
        "deployment_step_unit": "INSTANCE_COUNT",
        "deployment_step_size": 1,
    }
    # One instance of 20 is 5%, under LINEAR's 10% minimum; 11 is the first size where it falls short.
    message = refused({**linear, "scaling_max_instances": 20})
    assert "scaling_max_instances=20" in message and "at 11 instance(s)" in message
    assert "LINEAR allows 10-50%" in message
    # The twin: with at most 10 instances one instance is always at least 10%.
    assert Settings.from_context({**linear, "scaling_max_instances": 10}).scaling.scaling_max_instances == 10


def test_execution_timeout_too_short_for_the_largest_scaled_fleet_is_refused() -> None:
    linear = {
        "instance_count": 2,
        "scaling_min_instances": 2,
        "scaling_max_instances": 10,
        "deployment_traffic_shifting": "LINEAR",
        "deployment_step_unit": "INSTANCE_COUNT",
        "deployment_step_size": 1,
        "deployment_wait_interval_seconds": 300,
        "deployment_termination_wait_seconds": 600,
    }
    # Ten one-instance steps of 300 s plus 600 s of termination wait: 3600 s is not enough at 10 instances.
    message = refused({**linear, "deployment_maximum_execution_timeout_seconds": 3600})
    assert "deployment_maximum_execution_timeout_seconds=3600" in message and "at 10 instance(s)" in message
    # The twin: enough for the largest fleet, or a smaller maximum fleet, is accepted.
    ok = Settings.from_context({**linear, "deployment_maximum_execution_timeout_seconds": 3700})
    assert ok.deployment.deployment_maximum_execution_timeout_seconds == 3700
    smaller = {**linear, "scaling_max_instances": 9, "deployment_maximum_execution_timeout_seconds": 3600}
    assert Settings.from_context(smaller).scaling.scaling_max_instances == 9


def test_stepped_updates_of_a_model_package_are_refused() -> None:
    context = {"model_package_arn": PACKAGE_ARN, "instance_count": 2, "deployment_strategy": "rolling"}
    message = refused({**context, "deployment_step_size": 50})
    assert "setting 'deployment_strategy' = 'rolling'" in message and "Marketplace containers" in message
    # The twin: the same package with the default (blue/green, all at once) is accepted.
    assert Settings.from_context({"model_package_arn": PACKAGE_ARN, "instance_count": 2}).uses_model_package


def test_instance_type_without_known_device_counts_is_refused() -> None:
    message = refused({"instance_type": "ml.g9.xlarge"})
    assert "setting 'instance_type' = 'ml.g9.xlarge' is not allowed" in message and "ml.g6" in message


def test_bad_inference_ami_version_is_refused() -> None:
    message = refused({"inference_ami_version": "ubuntu-22.04"})
    assert "setting 'inference_ami_version' = 'ubuntu-22.04'" in message
    assert "al2023-ami-sagemaker-inference-gpu-4-1" in message
    # A name of the right shape that CloudFormation does not know is refused too (the old regex took it).
    message = refused({"inference_ami_version": "al2023-ami-sagemaker-inference-gpu-9"})
    assert "setting 'inference_ami_version' = 'al2023-ami-sagemaker-inference-gpu-9'" in message


def test_inference_ami_versions_are_the_ones_cloudformation_accepts() -> None:
    schemas = Path(sys.executable).parent.parent / "lib/python3.12/site-packages/cfnlint/data/schemas"
    schema_id = json.loads((schemas / "providers/us-east-1.json").read_text())[
        "AWS::SageMaker::EndpointConfig"
    ]
    schema = json.loads((schemas / f"resources/{schema_id}.json").read_text())
    allowed = schema["definitions"]["ProductionVariant"]["properties"]["InferenceAmiVersion"]["enum"]
    assert sorted(INFERENCE_AMI_ACCELERATORS) == sorted(allowed)


@pytest.mark.parametrize(
    ("instance_type", "ami", "expected"),
    [
        ("ml.c5.2xlarge", "al2023-ami-sagemaker-inference-gpu-4-1", "expected unset"),
        ("ml.g6.2xlarge", "al2-ami-sagemaker-inference-neuron-2", "al2023-ami-sagemaker-inference-gpu-4-1"),
        ("ml.inf2.xlarge", "al2-ami-sagemaker-inference-gpu-3-1", "al2-ami-sagemaker-inference-neuron-2"),
    ],
)
def test_inference_ami_for_another_accelerator_is_refused(
    instance_type: str, ami: str, expected: str
) -> None:
    message = refused({"instance_type": instance_type, "inference_ami_version": ami})
    assert f"setting 'inference_ami_version' = '{ami}' is not allowed with instance_type" in message
    assert expected in message


@pytest.mark.parametrize(
    ("instance_type", "ami"),
    [
        ("ml.g6.2xlarge", "al2023-ami-sagemaker-inference-gpu-4-1"),
        ("ml.g4dn.xlarge", "al2-ami-sagemaker-inference-gpu-2"),
        ("ml.inf2.xlarge", "al2-ami-sagemaker-inference-neuron-2"),
    ],
)
def test_inference_ami_for_the_instance_accelerator_is_accepted(instance_type: str, ami: str) -> None:
    settings = Settings.from_context({"instance_type": instance_type, "inference_ami_version": ami})
    assert settings.inference_ami_version == ami


def test_bad_endpoint_name_is_refused() -> None:
    message = refused({"endpoint_name": "my_endpoint"})
    assert "setting 'endpoint_name' = 'my_endpoint'" in message


def test_stack_name_that_makes_a_bad_endpoint_name_asks_for_an_explicit_one() -> None:
    message = refused({"stack_name": "Bidi-"})
    assert "derived from stack_name 'Bidi-'" in message and "set endpoint_name explicitly" in message


def test_every_message_names_the_setting_the_value_and_what_is_allowed() -> None:
    for context in ({"instance_count": "-1"}, {"smoke_budget_seconds": "9999"}, {"variant_name": "-x"}):
        message = refused(context)
        key, value = next(iter(context.items()))
        assert re.search(rf"setting '{key}' = '{re.escape(value)}' is not allowed: expected .+", message)
