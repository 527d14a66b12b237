"""Fail a pull request whose ``cdk diff`` would take the SageMaker endpoint down, unless it is labelled.

Reads the text ``cdk diff`` prints (any method: template, change set, ``--template <baseline>``) and
blocks when, in any stack:

* an ``AWS::SageMaker::Endpoint`` is removed (destroyed or orphaned), replaced or may be replaced:
  clients lose the endpoint name they call, or the endpoint is down while it is recreated;
* more ``AWS::SageMaker::Model`` or ``AWS::SageMaker::EndpointConfig`` resources are removed than
  added: the endpoint is left with nothing to serve.

A replaced Model or EndpointConfig (or one whose construct ID changed, shown as ``[-]`` old plus
``[+]`` new) is the normal update path: CloudFormation creates the new config and moves the endpoint
to it in place, so those pass. Output the gate cannot read fails closed (exit 2): a diff that crashed
half-way must not look like "no changes".

Exit status: 0 nothing blocking (or blocking changes allowed by the PR label), 1 blocked, 2 unreadable.
Standard library only, so it runs before any project dependency is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

ENDPOINT_TYPE: Final = "AWS::SageMaker::Endpoint"
SERVING_TYPES: Final = ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig")
DEFAULT_OVERRIDE_LABEL: Final = "allow-endpoint-replacement"
# A GitHub comment holds at most 65,536 characters; leave room for the verdict around the diff.
MAX_DIFF_CHARS_IN_REPORT: Final = 60_000

EXIT_OK: Final = 0
EXIT_BLOCKED: Final = 1
EXIT_UNREADABLE: Final = 2

ChangeKind = Literal["add", "update", "remove", "import"]
Impact = Literal["", "replace", "may be replaced", "destroy", "orphan", "import"]

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STACK_HEADER = re.compile(r"^Stack (?P<name>\S.*?)\s*$")
# The CLI prints one line per changed resource at column 0:
# "[~] AWS::SageMaker::Endpoint Serving/Endpoint Endpoint1A2B replace", where the construct path is
# left out when the template has no path metadata. Property lines below it are indented.
_RESOURCE_LINE = re.compile(
    r"^\[(?P<sign>[+~\-\u2190])\] (?P<type>[A-Za-z0-9]+(?:::[A-Za-z0-9]+)+) (?P<rest>\S.*?)\s*$"
)
_MOVE_SUFFIX = re.compile(r"\s*\(OR move .*\)$")
_SUMMARY = re.compile(r"Number of stacks with differences: (?P<count>\d+)")
_SIGN_TO_KIND: Final[dict[str, ChangeKind]] = {"+": "add", "~": "update", "-": "remove", "\u2190": "import"}
# Longest first, so "may be replaced" is not read as "... replaced".
_IMPACTS: Final[tuple[Impact, ...]] = ("may be replaced", "replace", "destroy", "orphan", "import")


class UnreadableDiffError(ValueError):
    """The text is not a complete ``cdk diff`` output, so no verdict can be given."""


@dataclass(frozen=True)
class ResourceChange:
    """One resource line of a ``cdk diff``."""

    stack: str
    kind: ChangeKind
    resource_type: str
    logical_id: str
    construct_path: str
    impact: Impact


@dataclass(frozen=True)
class Finding:
    """A change that would take the endpoint down or leave it nothing to serve."""

    stack: str
    resource_type: str
    logical_id: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The gate's decision for one diff."""

    findings: tuple[Finding, ...]
    override_label: str
    overridden: bool
    stacks_with_differences: int

    @property
    def blocked(self) -> bool:
        return bool(self.findings) and not self.overridden


def strip_ansi(text: str) -> str:
    """Remove terminal colours, for output captured with ``--color`` or ``FORCE_COLOR``."""
    return _ANSI_ESCAPE.sub("", text)


def _split_impact(rest: str) -> tuple[str, Impact]:
    for impact in _IMPACTS:
        if rest.endswith(" " + impact):
            return rest[: -len(impact) - 1], impact
    return rest, ""


def parse_diff(text: str) -> tuple[list[ResourceChange], int]:
    """The resource changes in ``cdk diff`` output and the number of stacks it says differ.

    Raises UnreadableDiffError when the CLI's closing summary line is missing (it crashed, or the
    output was cut), or when a resource line appears before any ``Stack`` header.
    """
    plain = strip_ansi(text)
    summaries = [int(match.group("count")) for match in _SUMMARY.finditer(plain)]
    if not summaries:
        raise UnreadableDiffError(
            "no 'Number of stacks with differences' line: this is not the complete output of `cdk diff`"
        )
    changes: list[ResourceChange] = []
    stack: str | None = None
    for line in plain.splitlines():
        header = _STACK_HEADER.match(line)
        if header is not None:
            stack = header.group("name")
            continue
        match = _RESOURCE_LINE.match(line)
        if match is None:
            continue
        if stack is None:
            raise UnreadableDiffError(f"resource line before any 'Stack' header: {line!r}")
        rest, impact = _split_impact(_MOVE_SUFFIX.sub("", match.group("rest")))
        words = rest.split(" ")
        changes.append(
            ResourceChange(
                stack=stack,
                kind=_SIGN_TO_KIND[match.group("sign")],
                resource_type=match.group("type"),
                logical_id=words[-1],
                construct_path=" ".join(words[:-1]) or words[-1],
                impact=impact,
            )
        )
    return changes, sum(summaries)


def find_blocking_changes(changes: Sequence[ResourceChange]) -> list[Finding]:
    """The changes that would remove or replace the endpoint or leave it without a model or config."""
    findings: list[Finding] = []
    stacks_adding_an_endpoint = {
        c.stack for c in changes if c.resource_type == ENDPOINT_TYPE and c.kind == "add"
    }
    for change in changes:
        if change.resource_type != ENDPOINT_TYPE:
            continue
        if change.kind == "remove":
            if change.impact == "orphan":
                how = "orphaned (left running outside the stack)"
            elif change.stack in stacks_adding_an_endpoint:
                how = "deleted and a new one created under another logical ID (was a construct ID renamed?)"
            else:
                how = "deleted"
            findings.append(
                Finding(change.stack, change.resource_type, change.logical_id, f"the endpoint would be {how}")
            )
        elif change.impact in ("replace", "may be replaced"):
            findings.append(
                Finding(
                    change.stack,
                    change.resource_type,
                    change.logical_id,
                    f"the endpoint {'would' if change.impact == 'replace' else 'may'} be replaced: "
                    "it is deleted and recreated, so streams drop and callers see it missing meanwhile",
                )
            )
    added = Counter((c.stack, c.resource_type) for c in changes if c.kind in ("add", "import"))
    for change in changes:
        if change.resource_type not in SERVING_TYPES or change.kind != "remove":
            continue
        key = (change.stack, change.resource_type)
        if added[key] > 0:
            added[key] -= 1  # an old one removed, a new one added: the normal replacement path
            continue
        findings.append(
            Finding(
                change.stack,
                change.resource_type,
                change.logical_id,
                f"the {change.resource_type.rsplit('::', 1)[1]} is removed and nothing replaces it",
            )
        )
    return findings


def labels_from_event(event_path: Path) -> frozenset[str]:
    """The labels on the pull request of a GitHub Actions event payload (``$GITHUB_EVENT_PATH``)."""
    event = json.loads(event_path.read_text(encoding="utf-8"))
    pull_request = event.get("pull_request") if isinstance(event, dict) else None
    if not isinstance(pull_request, dict):
        return frozenset()
    labels = pull_request.get("labels", [])
    return frozenset(
        label["name"] for label in labels if isinstance(label, dict) and isinstance(label.get("name"), str)
    )


def judge(text: str, labels: frozenset[str], override_label: str = DEFAULT_OVERRIDE_LABEL) -> Verdict:
    """Parse a diff and decide; raises UnreadableDiffError for output that is not a whole diff."""
    changes, stacks_with_differences = parse_diff(text)
    return Verdict(
        findings=tuple(find_blocking_changes(changes)),
        override_label=override_label,
        overridden=override_label in labels,
        stacks_with_differences=stacks_with_differences,
    )


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text, so the diff cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(
    verdict: Verdict | None, diff_text: str, *, title: str, marker: str, error: str = ""
) -> str:
    """The PR comment / job summary: a hidden marker (to update the same comment), verdict, diff."""
    lines = [f"<!-- {marker} -->", f"### {title}", ""]
    if verdict is None:
        lines.append(f":x: **The diff could not be read**: {error}")
    elif verdict.blocked:
        lines.append(
            ":no_entry: **Blocked: this change would take the SageMaker endpoint down.** "
            f"If that is intended, add the label `{verdict.override_label}` to the pull request "
            "and the check runs again."
        )
    elif verdict.findings:
        lines.append(
            f":warning: **Destructive endpoint changes allowed by the label `{verdict.override_label}`.**"
        )
    elif verdict.stacks_with_differences == 0:
        lines.append(":white_check_mark: No differences.")
    else:
        lines.append(
            ":white_check_mark: No destructive change to the endpoint "
            f"({verdict.stacks_with_differences} stack(s) with differences)."
        )
    if verdict is not None and verdict.findings:
        lines.append("")
        lines.extend(
            f"- `{f.stack}` `{f.logical_id}` ({f.resource_type}): {f.reason}" for f in verdict.findings
        )
    shown = strip_ansi(diff_text)
    if len(shown) > MAX_DIFF_CHARS_IN_REPORT:
        shown = shown[:MAX_DIFF_CHARS_IN_REPORT] + "\n… (cut; the full diff is in the job log)\n"
    fence = _fence(shown)
    lines += ["", "<details><summary>cdk diff</summary>", "", f"{fence}text", shown.rstrip("\n"), fence, ""]
    lines += ["</details>", ""]
    return "\n".join(lines)


def _in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _annotate(verdict: Verdict) -> None:
    """Workflow commands, so findings show on the pull request's checks page."""
    level = "error" if verdict.blocked else "warning"
    for finding in verdict.findings:
        print(f"::{level} title=Endpoint change ({finding.stack})::{finding.logical_id}: {finding.reason}")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("diff", type=Path, help="file holding the output of `cdk diff` (stdout and stderr)")
    parser.add_argument(
        "--event",
        type=Path,
        default=Path(os.environ["GITHUB_EVENT_PATH"]) if os.environ.get("GITHUB_EVENT_PATH") else None,
        help="GitHub event payload to read the PR labels from (default: $GITHUB_EVENT_PATH)",
    )
    parser.add_argument("--label", action="append", default=[], help="a PR label (repeatable), for local use")
    parser.add_argument("--override-label", default=DEFAULT_OVERRIDE_LABEL)
    parser.add_argument("--markdown", type=Path, help="write the report (PR comment, job summary) here")
    parser.add_argument("--title", default="cdk diff")
    parser.add_argument("--marker", default="bidistream-review:cdk-diff", help="hidden tag of the comment")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    diff_text = args.diff.read_text(encoding="utf-8", errors="replace")
    labels = frozenset(args.label)
    if args.event is not None and args.event.exists():
        labels |= labels_from_event(args.event)
    try:
        verdict = judge(diff_text, labels, args.override_label)
    except UnreadableDiffError as error:
        print(f"::error title=Unreadable cdk diff::{error}" if _in_github_actions() else error)
        if args.markdown is not None:
            args.markdown.write_text(
                render_markdown(None, diff_text, title=args.title, marker=args.marker, error=str(error)),
                encoding="utf-8",
            )
        return EXIT_UNREADABLE
    if args.markdown is not None:
        args.markdown.write_text(
            render_markdown(verdict, diff_text, title=args.title, marker=args.marker), encoding="utf-8"
        )
    if _in_github_actions():
        _annotate(verdict)
    for finding in verdict.findings:
        print(f"{finding.stack}/{finding.logical_id} ({finding.resource_type}): {finding.reason}")
    if verdict.blocked:
        print(f"Blocked. Add the label '{verdict.override_label}' to the pull request if this is intended.")
        return EXIT_BLOCKED
    if verdict.findings:
        print(f"Allowed by the label '{verdict.override_label}'.")
    else:
        print(f"No destructive change to the endpoint ({verdict.stacks_with_differences} stack(s) differ).")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
