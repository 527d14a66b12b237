#!/usr/bin/env python3
"""The CDK app: settings -> stack -> cdk-nag -> synth.

Settings come from cdk.json context and ``-c key=value``; the account and region come from the CDK
CLI (``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION``), so synth needs no AWS credentials.
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk

from stacks.endpoint_stack import EndpointStack
from stacks.nag import add_security_checks
from stacks.settings import Settings, SettingsError


def main(app: cdk.App | None = None) -> int:
    """Build the stack into ``app`` and synthesize it; 1 with a message if a setting is refused.

    ``app`` is the CLI's by default (context from ``CDK_CONTEXT_JSON``, output to ``CDK_OUTDIR``); a test
    passes its own to synthesize in its process.
    """
    if app is None:
        app = cdk.App()
    try:
        settings = Settings.from_context(app.node.get_all_context())
        # Some settings can only be checked against the target account and region (a model package's).
        EndpointStack(
            app,
            settings.stack_name,
            settings=settings,
            description="SageMaker AI endpoint with bidirectional streaming (bidistream)",
            env=cdk.Environment(
                account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
            ),
        )
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    add_security_checks(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
