#!/usr/bin/env python3
"""The CDK app: settings -> stack -> cdk-nag -> synth.

Settings come from cdk.json context and ``-c key=value``; the account and region come from the CDK
CLI (``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION``), so synth needs no AWS credentials.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before aws_cdk starts jsii's node: V8 compiles WebAssembly with its baseline compiler only. CDK's
# built-in template validator is an 8.9 MB WebAssembly module that runs once per synth; by default V8
# then optimizes its hot functions in background threads, and node waits for them before it exits:
# about 1.5 s of every synth on 2 cores (median 6.1 s -> 4.6 s for this app), for code never run again.
JSII_NODE = Path(__file__).resolve().parent / "stacks" / "node-liftoff"
os.environ.setdefault("JSII_NODE", str(JSII_NODE))

import aws_cdk as cdk  # noqa: E402  (jsii starts node on this import: JSII_NODE first)

from stacks.endpoint_stack import EndpointStack  # noqa: E402
from stacks.nag import add_security_checks  # noqa: E402
from stacks.settings import Settings, SettingsError  # noqa: E402


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
