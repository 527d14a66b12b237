"""cdk-nag (AwsSolutions) wiring: register the checks on the app, acknowledge findings next to resources.

cdk-nag 3 is a CDK validation plugin: an unacknowledged finding fails synth (``ValidationFailed``)
and is listed in ``cdk.out/validation-report.json``. With aws-cdk-lib 2.275.0, ``Validations.acknowledge``
accepts granular finding IDs that contain ``::`` (``AwsSolutions-IAM5[Resource::*]``); an
acknowledgment covers only the construct it is made on and its children, and only the exact finding.
"""

from __future__ import annotations

from typing import Any, Final

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

MIN_REASON_LENGTH: Final = 40  # characters; a reason a reviewer can check, not "needed"


def add_security_checks(app: cdk.App) -> None:
    """Run the AwsSolutions rule pack on every synth of ``app``."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: Construct, finding_id: str, reason: str) -> None:
    """Accept one exact finding (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope``, with a reason."""
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"the reason for acknowledging {finding_id} must explain why ({reason!r} is too short)"
        )
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding_id, reason=reason))


def wildcard_resource_finding(scope: Construct, resource: str) -> str:
    """The AwsSolutions-IAM5 finding ID for a wildcard ``resource`` as cdk-nag writes it.

    cdk-nag renders pseudo parameters as ``<AWS::Region>``; whether an ARN holds them or literals
    depends on the stack's environment, so the ID is computed from the resolved value, not typed in.
    """
    return f"AwsSolutions-IAM5[Resource::{_as_nag_text(cdk.Stack.of(scope).resolve(resource))}]"


def _as_nag_text(resolved: Any) -> str:
    if isinstance(resolved, str):
        return resolved
    if isinstance(resolved, dict) and set(resolved) == {"Ref"}:
        return f"<{resolved['Ref']}>"
    if isinstance(resolved, dict) and set(resolved) == {"Fn::Join"}:
        separator, parts = resolved["Fn::Join"]
        return str(separator).join(_as_nag_text(part) for part in parts)
    raise ValueError(f"cannot name a cdk-nag finding for {resolved!r}")
