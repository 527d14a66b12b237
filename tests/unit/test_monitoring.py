"""The alarms: 5XX and 4XX error rates, model errors and GPU memory, with thresholds from settings."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.unit.conftest import build_stack, template_of

DIMENSIONS = [{"Name": "EndpointName", "Value": "bidistream"}, {"Name": "VariantName", "Value": "AllTraffic"}]


@pytest.fixture(scope="module")
def default() -> Template:
    return template_of()


def alarm_on(template: Template, metric_name: str) -> dict[str, Any]:
    found = template.find_resources("AWS::CloudWatch::Alarm", {"Properties": {"MetricName": metric_name}})
    assert len(found) == 1, f"expected one alarm on {metric_name}, found {len(found)}"
    return dict(next(iter(found.values()))["Properties"])


def test_four_alarms_on_a_gpu_instance(default: Template) -> None:
    default.resource_count_is("AWS::CloudWatch::Alarm", 4)


@pytest.mark.parametrize(
    ("metric_name", "namespace", "statistic", "threshold", "operator"),
    [
        ("Invocation5XXErrors", "AWS/SageMaker", "Average", 0.05, "GreaterThanThreshold"),
        ("Invocation4XXErrors", "AWS/SageMaker", "Average", 0.25, "GreaterThanThreshold"),
        ("InvocationModelErrors", "AWS/SageMaker", "Sum", 5, "GreaterThanOrEqualToThreshold"),
        ("GPUMemoryUtilization", "/aws/sagemaker/Endpoints", "Maximum", 90, "GreaterThanThreshold"),
    ],
)
def test_alarm_watches_the_endpoint_variant(
    default: Template, metric_name: str, namespace: str, statistic: str, threshold: float, operator: str
) -> None:
    alarm = alarm_on(default, metric_name)
    assert alarm["Namespace"] == namespace
    assert alarm["Statistic"] == statistic
    assert alarm["Threshold"] == threshold
    assert alarm["ComparisonOperator"] == operator
    assert sorted(alarm["Dimensions"], key=lambda item: item["Name"]) == DIMENSIONS
    assert alarm["Period"] == 60
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 3)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_thresholds_and_window_come_from_settings() -> None:
    template = template_of(
        {
            "alarm_5xx_error_rate": "0.01",
            "alarm_4xx_error_rate": "0.5",
            "alarm_model_errors": "2",
            "alarm_gpu_memory_percent": "80",
            "alarm_evaluation_minutes": "10",
            "alarm_datapoints": "7",
        }
    )
    assert alarm_on(template, "Invocation5XXErrors")["Threshold"] == 0.01
    assert alarm_on(template, "Invocation4XXErrors")["Threshold"] == 0.5
    assert alarm_on(template, "InvocationModelErrors")["Threshold"] == 2
    gpu = alarm_on(template, "GPUMemoryUtilization")
    assert (gpu["Threshold"], gpu["EvaluationPeriods"], gpu["DatapointsToAlarm"]) == (80, 10, 7)


def test_no_gpu_alarm_on_a_cpu_instance() -> None:
    template = template_of({"instance_type": "ml.c5.xlarge"})
    template.resource_count_is("AWS::CloudWatch::Alarm", 3)
    assert not template.find_resources(
        "AWS::CloudWatch::Alarm", {"Properties": {"MetricName": "GPUMemoryUtilization"}}
    )


def test_alarms_are_exposed_by_purpose_with_names_from_the_endpoint() -> None:
    alarms = build_stack({"endpoint_name": "speech"}).monitoring.alarms
    assert sorted(alarms) == ["4xx-error-rate", "5xx-error-rate", "gpu-memory", "model-errors"]
    template = template_of({"endpoint_name": "speech"})
    names = {
        alarm["Properties"]["AlarmName"]
        for alarm in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert names == {
        "speech-5xx-error-rate",
        "speech-4xx-error-rate",
        "speech-model-errors",
        "speech-gpu-memory",
    }
