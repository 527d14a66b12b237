"""Say what a synthesized cloud assembly holds: each stack's template file and its resources by type.

``make synth`` prints this after ``cdk synth`` (``python -m stacks.summary cdk.out``), so a reader sees
where the templates are and what a deployment would create without opening the JSON.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

STACK_ARTIFACT = "aws:cloudformation:stack"


def summarize(assembly_dir: Path) -> str:
    """A short report of every stack in the assembly at ``assembly_dir`` (read from its manifest)."""
    manifest_path = assembly_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} does not exist: run `make synth` first")
    manifest = json.loads(manifest_path.read_text())
    lines: list[str] = []
    for name, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact.get("type") != STACK_ARTIFACT:
            continue
        template_path = assembly_dir / artifact["properties"]["templateFile"]
        resources = json.loads(template_path.read_text()).get("Resources", {})
        counts = Counter(resource["Type"] for resource in resources.values())
        lines.append(f"Stack {name}: {template_path} ({len(resources)} resources)")
        lines.extend(f"  {count:3d}  {kind}" for kind, count in sorted(counts.items()))
    if not lines:
        raise ValueError(f"{manifest_path} lists no CloudFormation stack")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    assembly_dir = Path(argv[1] if len(argv) > 1 else "cdk.out")
    try:
        print(summarize(assembly_dir))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
