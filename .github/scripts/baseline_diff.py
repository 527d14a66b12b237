"""Diff every stack of a synthesized cloud assembly against the same stack in a baseline assembly.

The credential-free review: the pull request's head and its base branch are both synthesized, then
for each stack in the head assembly this runs the pinned CDK CLI offline,
``cdk diff --app <head cdk.out> --template <base template> <stack>``, and writes the CLI's output
(stdout and stderr, in stack order) to one file that ``endpoint_gate.py`` reads. A stack the base
does not have is diffed against an empty template, so all of it shows as added. A stack only the
base has is reported as a note: ``cdk deploy`` does not delete stacks that left the app.

Exit status: 0 when every ``cdk diff`` ran (differences or not), 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

STACK_ARTIFACT_TYPE: Final = "aws:cloudformation:stack"
# The CLI must not reach for notices, telemetry or the network: --template compares files only.
CDK_DIFF_OPTIONS: Final = ("--no-color", "--no-notices")


class AssemblyError(ValueError):
    """A directory is not a readable cloud assembly."""


@dataclass(frozen=True)
class StackArtifact:
    """A stack in a cloud assembly: how the CLI selects it and where its template is."""

    artifact_id: str
    display_name: str
    template: Path


def read_stacks(assembly: Path) -> dict[str, StackArtifact]:
    """The stacks of a cloud assembly (``cdk.out``), keyed by artifact ID, in manifest order."""
    manifest_path = assembly / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise AssemblyError(f"{manifest_path}: {error}") from error
    artifacts = manifest.get("artifacts", {}) if isinstance(manifest, dict) else {}
    stacks: dict[str, StackArtifact] = {}
    for artifact_id, artifact in artifacts.items():
        if not isinstance(artifact, dict) or artifact.get("type") != STACK_ARTIFACT_TYPE:
            continue
        template_file = artifact.get("properties", {}).get("templateFile")
        if not isinstance(template_file, str):
            raise AssemblyError(f"{manifest_path}: stack {artifact_id!r} names no templateFile")
        stacks[artifact_id] = StackArtifact(
            artifact_id=artifact_id,
            display_name=str(artifact.get("displayName", artifact_id)),
            template=assembly / template_file,
        )
    return stacks


def diff_assemblies(head: Path, base: Path | None, cdk: Path, output: Path) -> int:
    """Run ``cdk diff --template`` for each head stack; the combined output goes to ``output``."""
    head_stacks = read_stacks(head)
    base_stacks = read_stacks(base) if base is not None else {}
    if not head_stacks:
        raise AssemblyError(f"{head}: the assembly has no stacks")
    failures = 0
    with tempfile.TemporaryDirectory() as scratch, output.open("w", encoding="utf-8") as out:
        empty_template = Path(scratch) / "empty.template.json"
        empty_template.write_text("{}\n", encoding="utf-8")
        for artifact_id, stack in head_stacks.items():
            baseline = base_stacks.get(artifact_id)
            if baseline is None:
                print(f"{stack.display_name}: not in the base, diffing against an empty template")
            command = [
                str(cdk.absolute()),
                "diff",
                "--app",
                str(head.resolve()),
                "--template",
                str((baseline.template if baseline is not None else empty_template).resolve()),
                *CDK_DIFF_OPTIONS,
                stack.display_name,
            ]
            result = subprocess.run(
                command,
                cwd=head.resolve().parent,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
            text = result.stdout.decode("utf-8", errors="replace")
            out.write(text)
            sys.stdout.write(text)
            if result.returncode != 0:
                failures += 1
                print(f"cdk diff for {stack.display_name} exited {result.returncode}", file=sys.stderr)
        for artifact_id in base_stacks.keys() - head_stacks.keys():
            note = (
                f"Note: stack {base_stacks[artifact_id].display_name} is in the base branch but not in this "
                "pull request; `cdk deploy` leaves it in place (`cdk destroy` removes it).\n"
            )
            out.write(note)
            sys.stdout.write(note)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--head", type=Path, required=True, help="the pull request's cloud assembly (cdk.out)"
    )
    parser.add_argument(
        "--base", type=Path, help="the base branch's cloud assembly; leave out when the base has no app yet"
    )
    parser.add_argument("--cdk", type=Path, required=True, help="the pinned CDK CLI (node_modules/.bin/cdk)")
    parser.add_argument("--output", type=Path, required=True, help="file to write the combined diff to")
    args = parser.parse_args(argv)
    try:
        return diff_assemblies(args.head, args.base, args.cdk, args.output)
    except (AssemblyError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
