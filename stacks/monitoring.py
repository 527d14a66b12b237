"""Monitoring of one endpoint variant: the alarm topic, the alarms (paging to it) and the dashboard.

The alarm logic lives in `stacks/alarms.py`, the topic in `stacks/notifications.py`, the dashboard in
`stacks/dashboard.py`; this construct only composes them, so the stack wires one thing.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.alarms import AlarmSettings, EndpointAlarms
from stacks.dashboard import EndpointDashboard
from stacks.notifications import AlarmNotifications


class Monitoring(Construct):
    """Alarms that page through an encrypted topic, and one dashboard showing them.

    Exposes ``topic``, ``alarms`` (the :class:`EndpointAlarms`), ``rollback_alarm_names`` (plain strings
    for the endpoint's auto-rollback configuration: the new-fleet alarms of ``deployed_config_name``) and
    ``dashboard``. ``extra_alarms`` (e.g. the streaming canary's) are shown on the dashboard too.
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
        email_addresses: Sequence[str] = (),
        deployed_config_name: str | None = None,
        extra_alarms: Sequence[cloudwatch.IAlarm] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        notifications = AlarmNotifications(self, "Notifications", email_addresses=email_addresses)
        self.topic: sns.ITopic = notifications.topic
        self.alarms = EndpointAlarms(
            self,
            "Alarms",
            endpoint_name=endpoint_name,
            variant_name=variant_name,
            instance_type=instance_type,
            settings=settings,
            topic=self.topic,
            deployed_config_name=deployed_config_name,
        )
        self.rollback_alarm_names: tuple[str, ...] = self.alarms.rollback_alarm_names
        shown: list[cloudwatch.IAlarm] = [*self.alarms.all_alarms, *extra_alarms, self.alarms.unhealthy]
        self.dashboard: cloudwatch.Dashboard = EndpointDashboard(
            self,
            "Dashboard",
            endpoint_name=endpoint_name,
            variant_name=variant_name,
            instance_type=instance_type,
            alarms=shown,
        ).dashboard

    def page_on(self, alarm: cloudwatch.Alarm) -> None:
        """Send ``alarm``'s ALARM and OK transitions to the alarm topic, like every all-fleet alarm."""
        self.alarms.page_on(alarm)
