"""Shared helpers for the operations-construct tests (alarms, notifications, dashboard, scaling, guardrails).

Each construct is tested on its own in a bare ``cdk.Stack`` with an explicit environment, so nothing looks
up credentials and no Docker or network is needed.
"""

from __future__ import annotations

import os

# Before aws_cdk starts node: jsii's end-of-life banner for Node 20 is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.assertions import Template

from stacks.alarms import EndpointAlarms
from stacks.deployment_guardrails import DeploymentGuardrails, DeploymentSettings, build_deployment_guardrails
from stacks.nag import add_security_checks

ACCOUNT = "123456789012"
REGION = "us-east-1"
ENDPOINT_NAME = "bidi-endpoint"
VARIANT_NAME = "AllTraffic"
# 4 NVIDIA L4 GPUs and 48 vCPUs: device normalisation shows in every utilization threshold.
MULTI_GPU_INSTANCE = "ml.g6.12xlarge"
MULTI_GPU_VCPUS = 48
MULTI_GPU_GPUS = 4


def bare_stack(app: cdk.App | None = None, stack_id: str = "Operations") -> cdk.Stack:
    """A stack with a fixed account and region, in a fresh app unless one is given."""
    return cdk.Stack(app or cdk.App(), stack_id, env=cdk.Environment(account=ACCOUNT, region=REGION))


def guarded_endpoint(
    stack: cdk.Stack, alarms: EndpointAlarms
) -> tuple[sagemaker.CfnEndpoint, DeploymentGuardrails]:
    """An endpoint whose default deployment config rolls back on ``alarms``, wired as the stack wires it."""
    guardrails = build_deployment_guardrails(
        stack,
        settings=DeploymentSettings(),
        rollback_alarm_names=alarms.rollback_alarm_names,
        instance_count=2,
    )
    endpoint = sagemaker.CfnEndpoint(
        stack,
        "Endpoint",
        endpoint_config_name="config",
        endpoint_name=ENDPOINT_NAME,
        deployment_config=guardrails.deployment_config,
    )
    endpoint.node.add_dependency(alarms)  # the alarms exist before the endpoint names them
    return endpoint, guardrails


def resources_of(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical ID -> resource definition for every resource of ``resource_type``."""
    found: dict[str, dict[str, Any]] = template.find_resources(resource_type)
    return found


def alarm_by_name(template: Template, alarm_name: str) -> tuple[str, dict[str, Any]]:
    """The logical ID and properties of the metric alarm called ``alarm_name``."""
    matches = [
        (logical_id, resource["Properties"])
        for logical_id, resource in resources_of(template, "AWS::CloudWatch::Alarm").items()
        if resource["Properties"].get("AlarmName") == alarm_name
    ]
    assert len(matches) == 1, f"expected one alarm named {alarm_name!r}, found {len(matches)}"
    return matches[0]


def alarm_names(template: Template) -> set[str]:
    """Names of all metric alarms in the template."""
    return {
        resource["Properties"]["AlarmName"]
        for resource in resources_of(template, "AWS::CloudWatch::Alarm").values()
    }


def flatten_join(value: Any) -> str:
    """Render an ``Fn::Join`` (as in a DashboardBody or an AlarmRule) as text; tokens become ``<...>``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(flatten_join(part) for part in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<GetAtt:{logical_id}.{attribute}>"
    if isinstance(value, dict) and "Ref" in value:
        return f"<Ref:{value['Ref']}>"
    raise AssertionError(f"unexpected intrinsic in a joined string: {value!r}")


def dashboard_body(template: Template) -> dict[str, Any]:
    """The parsed DashboardBody JSON of the template's only dashboard."""
    dashboards = resources_of(template, "AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1, f"expected one dashboard, found {sorted(dashboards)}"
    (dashboard,) = dashboards.values()
    body: dict[str, Any] = json.loads(flatten_join(dashboard["Properties"]["DashboardBody"]))
    return body


def nag_violations(build: Callable[[cdk.Stack], None], outdir: Path) -> list[tuple[str, str]]:
    """Synthesize a stack built by ``build`` with the AwsSolutions checks, as app.py wires them.

    Returns (rule, construct path) for every unacknowledged finding; empty when synth passes.
    """
    app = cdk.App(outdir=str(outdir))
    add_security_checks(app)
    build(bare_stack(app))
    try:
        app.synth()
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
        report = json.loads((outdir / "validation-report.json").read_text())
        return [
            (violation["ruleName"], construct["constructPath"])
            for plugin in report["pluginReports"]
            for violation in plugin["violations"]
            for construct in violation["violatingConstructs"]
        ]
    return []
