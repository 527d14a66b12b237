"""A Marketplace model package: only in its own region, no deployment guardrails SageMaker would ignore."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aws_cdk as cdk
import pytest

from stacks.endpoint_stack import EndpointStack
from stacks.settings import Settings, SettingsError
from tests.unit.conftest import PACKAGE_ARN, REGION, build_stack, only_resource, template_of
from tests.unit.operations_support import alarm_names
from tests.unit.test_app import finish_app, start_app
from tests.unit.test_cfn_lint import lint

OTHER_REGION_ARN = PACKAGE_ARN.replace(f":{REGION}:", ":us-east-1:")


def agnostic_template(package_arn: str) -> dict[str, object]:
    """The synthesized template of an environment-agnostic stack (no account or region at synth)."""
    template: dict[str, object] = json.loads(_agnostic_template_text(package_arn))
    return template


@functools.cache
def _agnostic_template_text(package_arn: str) -> str:
    """Synthesized once per package ARN and test process; each caller parses its own copy."""
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = EndpointStack(app, "Agnostic", settings=Settings.from_context({"model_package_arn": package_arn}))
    return (Path(app.synth().directory) / stack.template_file).read_text(encoding="utf-8")


def test_a_package_from_another_region_is_refused_at_synth() -> None:
    with pytest.raises(SettingsError) as refused:
        build_stack({"model_package_arn": OTHER_REGION_ARN})
    assert str(refused.value) == (
        f"setting 'model_package_arn' = {OTHER_REGION_ARN!r} is not allowed in region {REGION}: a model "
        "package exists only in its own region (us-east-1); expected a package ARN in eu-west-1 "
        "(arn:<partition>:sagemaker:eu-west-1:...), or deploy to us-east-1"
    )


def test_a_package_in_the_stacks_region_is_accepted_without_a_rule() -> None:
    template = template_of({"model_package_arn": PACKAGE_ARN}).to_json()
    assert "ModelPackageRegion" not in json.dumps(template.get("Rules", {}))


def test_an_environment_agnostic_stack_makes_cloudformation_check_the_region_first() -> None:
    rules = agnostic_template(PACKAGE_ARN)["Rules"]
    assert isinstance(rules, dict)
    (rule,) = [rule for name, rule in rules.items() if name.startswith("ModelModelPackageRegion")]
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, REGION]}
    assert "deploy this stack to eu-west-1" in assertion["AssertDescription"]


def test_the_region_rule_passes_cfn_lint(tmp_path: Path) -> None:
    path = tmp_path / "agnostic.template.json"
    path.write_text(json.dumps(agnostic_template(PACKAGE_ARN)), encoding="utf-8")
    result = lint(path)
    assert result.findings == [], result.findings
    assert result.returncode == 0, result.findings


@pytest.fixture(scope="module", autouse=True)
def region_refusal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """The app run of the region test, started with the module so it runs beside the in-process tests."""
    # The CLI gives app.py the target region in CDK_DEFAULT_REGION.
    process = start_app(
        {"model_package_arn": OTHER_REGION_ARN},
        tmp_path_factory.mktemp("region-refusal"),
        {"CDK_DEFAULT_REGION": REGION},
    )
    yield process
    if process.poll() is None:  # the test did not get to wait for it
        process.kill()
        process.communicate()


def test_app_refuses_the_package_region_with_a_message_not_a_traceback(
    region_refusal: subprocess.Popen[str],
) -> None:
    result = finish_app(region_refusal)
    assert result.returncode == 1
    assert result.stderr.startswith("error: setting 'model_package_arn' = ")
    assert "a model package exists only in its own region (us-east-1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_package_endpoint_gets_no_deployment_config_and_no_alarm_read_grant() -> None:
    template = template_of({"model_package_arn": PACKAGE_ARN})
    _, endpoint = only_resource(template, "AWS::SageMaker::Endpoint")
    assert "DeploymentConfig" not in endpoint["Properties"]
    assert "cloudwatch:DescribeAlarms" not in json.dumps(template.find_resources("AWS::IAM::Policy"))
    # The twin: our own image keeps its guardrails.
    _, own = only_resource(template_of(), "AWS::SageMaker::Endpoint")
    assert own["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]


def test_a_package_endpoint_gets_no_new_fleet_alarms_nothing_would_read() -> None:
    # Without a deployment config no auto-rollback alarm is read; the all-fleet alarms still page.
    package = alarm_names(template_of({"model_package_arn": PACKAGE_ARN}))
    assert not [name for name in package if "new-fleet" in name]
    assert any(name.endswith("-5xx-error-rate") for name in package)
    # The twin: our own image's endpoint rolls back on the new fleet's copies.
    assert any(name.endswith("-new-fleet-5xx-error-rate") for name in alarm_names(template_of()))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("deployment_wait_interval_seconds", 300),
        ("deployment_termination_wait_seconds", 900),
        ("deployment_maximum_execution_timeout_seconds", 7200),
    ],
)
def test_deployment_settings_sagemaker_would_ignore_for_a_package_are_refused(name: str, value: int) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_context({"model_package_arn": PACKAGE_ARN, name: value})
    expected = f"setting '{name}' = {value!r} is not allowed with model_package_arn"
    assert str(refused.value).startswith(expected)
    assert "no deployment guardrails to Marketplace containers" in str(refused.value)
    assert Settings.from_context({name: value}).deployment  # the twin: fine for our own image
