"""Hand-written cloud assemblies (manifest + templates) for running the pinned CLI without an app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.workflow.scripts import ROOT

CDK = ROOT / "node_modules" / ".bin" / "cdk"


def endpoint(name: str) -> dict[str, Any]:
    """An endpoint resource; its EndpointName cannot change in place, so a new name means replacement."""
    return {
        "Type": "AWS::SageMaker::Endpoint",
        "Properties": {"EndpointConfigName": "serving-config", "EndpointName": name},
    }


def write_assembly(directory: Path, stacks: dict[str, dict[str, Any]]) -> Path:
    """A cloud assembly laid out as `cdk synth` does: one stack per entry (name -> Resources)."""
    directory.mkdir()
    artifacts = {}
    for name, resources in stacks.items():
        (directory / f"{name}.template.json").write_text(
            json.dumps({"Resources": resources}), encoding="utf-8"
        )
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": f"{name}.template.json"},
            "displayName": name,
        }
    (directory / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return directory
