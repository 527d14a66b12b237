"""AlarmNotifications: the CMK, the encrypted SSL-only topic and its policies, email subscriptions.

Also cdk-nag over all the operations constructs together, with twins showing it catches an insecure topic
or key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from stacks.alarms import AlarmSettings, EndpointAlarms
from stacks.dashboard import EndpointDashboard
from stacks.notifications import AlarmNotifications
from stacks.scaling import EndpointScaling, ScalingSettings
from tests.unit.operations_support import (
    ACCOUNT,
    ENDPOINT_NAME,
    MULTI_GPU_INSTANCE,
    REGION,
    VARIANT_NAME,
    bare_stack,
    guarded_endpoint,
    nag_violations,
    resources_of,
)

EMAILS = ("oncall@example.com", "ml-team@example.org")


@pytest.fixture(scope="module")
def notifications() -> tuple[Template, AlarmNotifications, cdk.Stack]:
    stack = bare_stack()
    built = AlarmNotifications(stack, "Notifications", email_addresses=EMAILS)
    return Template.from_stack(stack), built, stack


def _only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def test_key_is_customer_managed_with_rotation(
    notifications: tuple[Template, AlarmNotifications, cdk.Stack],
) -> None:
    template, _, _ = notifications
    _, key = _only(template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True


def test_key_policy_lets_cloudwatch_encrypt_for_the_topic(
    notifications: tuple[Template, AlarmNotifications, cdk.Stack],
) -> None:
    template, _, _ = notifications
    _, key = _only(template, "AWS::KMS::Key")
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1
    assert cloudwatch[0]["Effect"] == "Allow"
    assert sorted(cloudwatch[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_topic_is_encrypted_with_that_key(
    notifications: tuple[Template, AlarmNotifications, cdk.Stack],
) -> None:
    template, _, _ = notifications
    key_id, _ = _only(template, "AWS::KMS::Key")
    _, topic = _only(template, "AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_topic_policy_denies_plain_http_and_lets_only_this_accounts_alarms_publish(
    notifications: tuple[Template, AlarmNotifications, cdk.Stack],
) -> None:
    template, _, _ = notifications
    topic_id, _ = _only(template, "AWS::SNS::Topic")
    _, policy = _only(template, "AWS::SNS::TopicPolicy")
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert len(deny) == 1
    assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny[0]["Principal"] == "*"
    allow = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allow) == 1
    assert allow[0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow[0]["Action"] == "sns:Publish"
    assert allow[0]["Resource"] == {"Ref": topic_id}
    assert allow[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    source_arn = allow[0]["Condition"]["ArnLike"]["aws:SourceArn"]
    assert source_arn == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":cloudwatch:{REGION}:{ACCOUNT}:alarm:*"]]
    }


def test_each_email_address_is_subscribed(
    notifications: tuple[Template, AlarmNotifications, cdk.Stack],
) -> None:
    template, _, _ = notifications
    topic_id, _ = _only(template, "AWS::SNS::Topic")
    subscriptions = resources_of(template, "AWS::SNS::Subscription").values()
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions) == sorted(EMAILS)
    for subscription in subscriptions:
        assert subscription["Properties"]["Protocol"] == "email"
        assert subscription["Properties"]["TopicArn"] == {"Ref": topic_id}


def test_attributes_expose_the_topic_and_key(
    notifications: tuple[Template, AlarmNotifications, cdk.Stack],
) -> None:
    _, built, stack = notifications
    assert stack.resolve(built.topic.topic_arn) == {
        "Ref": stack.get_logical_id(built.topic.node.default_child)
    }
    assert stack.resolve(built.key.key_arn) == {
        "Fn::GetAtt": [stack.get_logical_id(built.key.node.default_child), "Arn"]
    }


def test_no_subscription_without_addresses() -> None:
    stack = bare_stack()
    AlarmNotifications(stack, "Notifications")
    Template.from_stack(stack).resource_count_is("AWS::SNS::Subscription", 0)


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        (("not-an-address",), r"alarm_email_addresses: 'not-an-address' is not an email address"),
        (("a b@example.com",), r"alarm_email_addresses: 'a b@example.com' is not an email address"),
        (("x@example.com", "x@example.com"), r"each address may appear once"),
    ],
)
def test_bad_email_addresses_are_refused(addresses: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmNotifications(bare_stack(), "Notifications", email_addresses=addresses)


def _all_operations_constructs(stack: cdk.Stack) -> None:
    """Everything this module family builds, wired the way the endpoint stack will wire it."""
    notifications = AlarmNotifications(stack, "Notifications", email_addresses=EMAILS)
    alarms = EndpointAlarms(
        stack,
        "Alarms",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=MULTI_GPU_INSTANCE,
        settings=AlarmSettings(alarm_first_chunk_latency_threshold_ms=500.0, alarm_no_traffic_minutes=60),
        topic=notifications.topic,
        deployed_config_name="bidi-config-v2",
    )
    EndpointDashboard(
        stack,
        "Dashboard",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=MULTI_GPU_INSTANCE,
        alarms=[*alarms.all_alarms, alarms.unhealthy],
    )
    endpoint, _ = guarded_endpoint(stack, alarms)
    EndpointScaling(
        stack,
        "Scaling",
        endpoint_name=ENDPOINT_NAME,
        variant_name=VARIANT_NAME,
        instance_type=MULTI_GPU_INSTANCE,
        settings=ScalingSettings(),
        endpoint=endpoint,
    )


def test_operations_constructs_are_nag_clean(tmp_path: Path) -> None:
    assert nag_violations(_all_operations_constructs, tmp_path) == []


def test_nag_catches_a_topic_without_ssl_enforcement(tmp_path: Path) -> None:
    def insecure(stack: cdk.Stack) -> None:
        _all_operations_constructs(stack)
        sns.Topic(stack, "PlainTopic")

    assert ("AwsSolutions-SNS3", "Operations/PlainTopic/Resource") in nag_violations(insecure, tmp_path)


def test_nag_catches_a_key_without_rotation(tmp_path: Path) -> None:
    def insecure(stack: cdk.Stack) -> None:
        _all_operations_constructs(stack)
        kms.Key(stack, "StaticKey", enable_key_rotation=False)

    assert ("AwsSolutions-KMS5", "Operations/StaticKey/Resource") in nag_violations(insecure, tmp_path)
