"""Where alarms go: an SNS topic encrypted with a customer-managed KMS key, plus optional email subscribers.

The key must be customer-managed: CloudWatch cannot use the AWS-managed `alias/aws/sns` key, so alarm
notifications to a topic encrypted with it are silently dropped. The key policy therefore lets the CloudWatch
service principal generate data keys and decrypt, and the topic policy lets it publish for this account's
alarms only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"
# Deliberately loose: one @, no spaces, a dot in the domain. SNS sends a confirmation mail anyway.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AlarmNotifications(Construct):
    """The alarm topic (`self.topic`) and its customer-managed key (`self.key`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        email_addresses: Sequence[str] = (),
        display_name: str = "Endpoint alarms",
    ) -> None:
        super().__init__(scope, construct_id)
        for address in email_addresses:
            if not EMAIL_PATTERN.fullmatch(address):
                raise ValueError(
                    f"alarm_email_addresses: {address!r} is not an email address (expected name@domain.tld)"
                )
        if len(set(email_addresses)) != len(email_addresses):
            raise ValueError(f"alarm_email_addresses={list(email_addresses)!r}: each address may appear once")

        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the endpoint alarm topic; CloudWatch may use it to publish alarms",
            enable_key_rotation=True,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                # In a key policy "*" means this key.
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=display_name,
            master_key=self.key,
            enforce_ssl=True,
        )
        stack = cdk.Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                # Confused-deputy guard: only alarms of this account may publish.
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        for address in email_addresses:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
