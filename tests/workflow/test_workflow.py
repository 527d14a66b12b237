"""The review workflow: GitHub's workflow schema, zizmor, pinned actions, permissions, documented verbs.

Both checkers run offline as subprocesses with the .venv binaries; each has a twin that feeds it a
broken copy of the real workflow and shows it fails.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflow.scripts import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "review.yml"
BIN = Path(sys.executable).parent
CHECK_JSONSCHEMA = BIN / "check-jsonschema"
ZIZMOR = BIN / "zizmor"
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<target>[^\s#]+)(?:\s*#\s*(?P<comment>.*))?$")
MAKE_CALL = re.compile(r"(?:^|[\s;&|(])make\s+(?P<args>[^\n;&|>]*)")


def workflow_text() -> str:
    return WORKFLOW.read_text(encoding="utf-8")


def load_workflow() -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(workflow_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def jobs() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load_workflow()["jobs"]
    return found


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the real workflow with one edit, under .github/workflows so tools treat it as one."""
    text = workflow_text()
    assert old in text, f"the workflow no longer contains {old!r}; update this twin"
    target = tmp_path / ".github" / "workflows" / "review.yml"
    target.parent.mkdir(parents=True)
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def schema_check(path: Path, schema: str = "vendor.github-workflows") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def zizmor(path: Path) -> tuple[int, list[str]]:
    """zizmor's exit status and the audit IDs it reported (repository config ignored)."""
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-config", "--no-progress", "--format=json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    return result.returncode, sorted({finding["ident"] for finding in findings})


# --- GitHub's workflow schema -----------------------------------------------------------------------


@pytest.mark.parametrize("workflow", sorted(WORKFLOW.parent.glob("*.y*ml")), ids=lambda path: path.name)
def test_every_workflow_passes_the_github_workflow_schema(workflow: Path) -> None:
    result = schema_check(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_job_without_runs_on(tmp_path: Path) -> None:
    broken = write_variant(tmp_path, "    runs-on: ubuntu-24.04\n", "    runs_on: ubuntu-24.04\n")
    result = schema_check(broken)
    assert result.returncode == 1
    assert "runs_on" in result.stdout or "runs-on" in result.stdout


# --- zizmor --------------------------------------------------------------------------------------------


def test_workflows_and_dependabot_have_no_zizmor_findings() -> None:
    status, findings = zizmor(ROOT / ".github")
    assert (status, findings) == (0, [])


def test_zizmor_catches_a_pull_request_title_injected_into_run(tmp_path: Path) -> None:
    unsafe = write_variant(
        tmp_path,
        "      - name: make test\n",
        '      - name: Greet\n        run: echo "${{ github.event.pull_request.title }}"\n'
        "      - name: make test\n",
    )
    status, findings = zizmor(unsafe)
    assert status != 0
    assert "template-injection" in findings


def test_zizmor_catches_a_checkout_that_keeps_its_token(tmp_path: Path) -> None:
    unsafe = write_variant(tmp_path, "        with:\n          persist-credentials: false\n", "")
    status, findings = zizmor(unsafe)
    assert status != 0
    assert "artipacked" in findings


# --- Pinned actions ----------------------------------------------------------------------------------


def unpinned_uses(text: str) -> list[str]:
    """Every `uses:` that is not a 40-hex commit SHA followed by a `# vX.Y.Z` comment."""
    problems = []
    for line in text.splitlines():
        match = USES_LINE.match(line)
        if match is None or match.group("target").startswith("./"):
            continue
        _action, _, ref = match.group("target").partition("@")
        comment = match.group("comment") or ""
        if not FULL_SHA.match(ref) or not re.match(r"^v\d+\.\d+\.\d+\b", comment):
            problems.append(line.strip())
    return problems


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version() -> None:
    text = workflow_text()
    assert len(re.findall(r"^\s*(?:-\s+)?uses:", text, re.MULTILINE)) >= 4
    assert unpinned_uses(text) == []


def test_pin_check_flags_tags_branches_and_short_shas() -> None:
    text = (
        "      - uses: actions/checkout@v6\n"
        "      - uses: actions/setup-node@main # v6.4.0\n"
        "        uses: actions/setup-python@a309ff8 # v6.2.0\n"
        "      - uses: aws-actions/configure-aws-credentials@8df5847569e6427dd6c4fb1cf565c83acfa8afa7\n"
        "      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2\n"
    )
    assert len(unpinned_uses(text)) == 4


def test_one_action_is_pinned_to_one_sha_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for line in workflow_text().splitlines():
        match = USES_LINE.match(line)
        if match is not None:
            action, _, ref = match.group("target").partition("@")
            pins.setdefault(action, set()).add(f"{ref} {match.group('comment')}")
    assert {action: len(refs) for action, refs in pins.items()} == dict.fromkeys(pins, 1)


# --- Triggers and permissions ------------------------------------------------------------------------


def test_runs_on_pull_request_never_pull_request_target() -> None:
    triggers = load_workflow()["on"]
    assert set(triggers) == {"pull_request"}
    assert {"labeled", "unlabeled", "synchronize"} <= set(triggers["pull_request"]["types"])


def test_no_default_permissions_and_each_job_declares_its_own() -> None:
    assert load_workflow()["permissions"] == {}
    for name, job in jobs().items():
        assert "permissions" in job, f"job {name} inherits permissions"
        assert set(job["permissions"].values()) <= {"read", "write"}


def test_only_the_account_diff_job_gets_an_oidc_token_and_only_for_same_repository_prs() -> None:
    with_token = {name for name, job in jobs().items() if job["permissions"].get("id-token") == "write"}
    assert with_token == {"account-diff"}
    condition = jobs()["account-diff"]["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    uses = [step.get("uses", "") for step in steps(jobs()["account-diff"])]
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)


def test_the_credential_free_job_needs_no_secrets_or_tokens() -> None:
    job = jobs()["baseline-diff"]
    assert job["permissions"] == {"contents": "read"}
    assert "secrets." not in json.dumps(job)
    assert "if" not in job  # runs for forks too
    refs = [
        step.get("with", {}).get("ref") for step in steps(job) if "actions/checkout@" in step.get("uses", "")
    ]
    assert "${{ github.event.pull_request.base.sha }}" in refs


def test_the_job_that_can_comment_runs_no_pull_request_code() -> None:
    writers = {name for name, job in jobs().items() if "write" in job["permissions"].values()}
    assert writers == {"account-diff", "comment"}
    comment_steps = steps(jobs()["comment"])
    assert not any("actions/checkout@" in step.get("uses", "") for step in comment_steps)
    assert not any("make " in step.get("run", "") for step in comment_steps)


def test_every_checkout_drops_its_token() -> None:
    for name, job in jobs().items():
        for step in steps(job):
            if "actions/checkout@" in step.get("uses", ""):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}: {step.get('name')}"


BASE_REF = "${{ github.event.pull_request.base.sha }}"
PINNED_CLI_DIFF = "node_modules/.bin/cdk diff --app pr-assembly"


def credentialed_pr_code(workflow: dict[str, Any]) -> list[str]:
    """How a job holding an OIDC token could run pull-request code (empty when it cannot)."""
    problems = []
    for name, job in workflow["jobs"].items():
        if job.get("permissions", {}).get("id-token") != "write":
            continue
        downloads = [
            step.get("with", {}).get("path", "")
            for step in job.get("steps", [])
            if "actions/download-artifact@" in step.get("uses", "")
        ]
        for step in job.get("steps", []):
            uses, run = step.get("uses", ""), step.get("run", "")
            if "actions/checkout@" in uses and step.get("with", {}).get("ref") != BASE_REF:
                problems.append(f"{name}: checks out the pull request ({step.get('name')})")
            if "actions/setup-python@" in uses:
                problems.append(f"{name}: sets up Python for pull-request code")
            if "actions/setup-" in uses and "cache" in step.get("with", {}):
                problems.append(f"{name}: restores a cache the pull request's jobs can write")
            # The artifact is data for `cdk diff --app <dir>`; nothing in it may be run or sourced.
            if any(re.search(rf"(^|[\s=\"'])(\./)?{re.escape(path)}/", run) for path in downloads if path):
                problems.append(f"{name}: runs or reads a file from the pull request's artifact")
            if re.search(r"(^|\s)make\s", run):
                problems.append(f"{name}: runs make (the pull request's app.py)")
            if "npm ci" in run and "--ignore-scripts" not in run:
                problems.append(f"{name}: npm ci runs install scripts")
            if "cdk " in run and PINNED_CLI_DIFF not in run:
                problems.append(f"{name}: runs the CDK CLI on something other than the downloaded assembly")
    return problems


def test_the_credentialed_job_runs_only_the_base_branchs_cli_on_the_pr_assembly() -> None:
    workflow = load_workflow()
    assert credentialed_pr_code(workflow) == []
    job = workflow["jobs"]["account-diff"]
    runs = "\n".join(step.get("run", "") for step in steps(job))
    assert PINNED_CLI_DIFF in runs and "--method=template" in runs
    (download,) = [step for step in steps(job) if "actions/download-artifact@" in step.get("uses", "")]
    artifact = download["with"]["name"]
    # The assembly comes from a job it needs, which synthesizes without any credentials.
    (producer,) = [
        name
        for name, other in workflow["jobs"].items()
        for step in steps(other)
        if "actions/upload-artifact@" in step.get("uses", "") and step["with"]["name"] == artifact
    ]
    assert producer in as_list(job["needs"])
    assert "id-token" not in workflow["jobs"][producer]["permissions"]
    assert "secrets." not in json.dumps(workflow["jobs"][producer])
    upload = next(
        s for s in steps(workflow["jobs"][producer]) if "actions/upload-artifact@" in s.get("uses", "")
    )
    assert steps(workflow["jobs"][producer]).index(upload) > next(
        i for i, s in enumerate(steps(workflow["jobs"][producer])) if s.get("run") == "make synth"
    )


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            f"          ref: {BASE_REF}\n          persist-credentials: false\n      - name: Set up Node\n",
            "          persist-credentials: false\n      - name: Set up Node\n",
            "checks out the pull request",
        ),
        ("npm ci --ignore-scripts", "npm ci", "install scripts"),
        (
            "node_modules/.bin/cdk diff --app pr-assembly --no-color --method=template",
            'make diff ARGS="--no-color --method=template"',
            "runs make",
        ),
        (
            "python3 .github/scripts/endpoint_gate.py account-diff.txt",
            "python3 pr-assembly/endpoint_gate.py account-diff.txt",
            "from the pull request's artifact",
        ),
        (
            "${{ env.NODE_VERSION }}\n      - name: Install the CDK CLI",
            "${{ env.NODE_VERSION }}\n          cache: npm\n      - name: Install the CDK CLI",
            "restores a cache",
        ),
    ],
)
def test_credentialed_job_check_catches_pull_request_code(old: str, new: str, problem: str) -> None:
    # The twins: what the account job did before (make diff on a PR checkout), and an npm ci with scripts.
    text = workflow_text()
    account = text.index("  account-diff:")
    assert old in text[account:], f"the account job no longer contains {old!r}; update this twin"
    variant = text[:account] + text[account:].replace(old, new, 1)
    data: dict[Any, Any] = yaml.safe_load(variant)
    found = credentialed_pr_code(data)
    assert any(problem in item for item in found), found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_both_diff_jobs_run_the_endpoint_gate() -> None:
    for name in ("baseline-diff", "account-diff"):
        runs = "\n".join(step.get("run", "") for step in steps(jobs()[name]))
        assert ".github/scripts/endpoint_gate.py" in runs, name


# --- The verbs the README documents ------------------------------------------------------------------


def make_targets_called() -> set[str]:
    targets = set()
    for job in jobs().values():
        for step in steps(job):
            for match in MAKE_CALL.finditer(step.get("run", "")):
                words = [w for w in shlex.split(match.group("args")) if "=" not in w]
                if words[:1] == ["-C"]:
                    words = words[2:]
                targets.update(words)
    return targets


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.MULTILINE))


def documented_verbs(text: str) -> set[str]:
    """Targets named after `make` in documentation, including lists like `make synth | deploy`."""
    verbs = set()
    for match in re.finditer(r"\bmake ([a-z][a-z0-9-]*(?:\s*\|\s*[a-z][a-z0-9-]*)*)", text):
        verbs.update(re.split(r"\s*\|\s*", match.group(1)))
    return verbs


def test_workflow_runs_make_test_like_ci_does() -> None:
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("make ")
    ]
    test_runs = [step.get("run", "").strip() for step in steps(jobs()["test"])]
    assert ci_commands and set(ci_commands) <= set(test_runs)


def test_workflow_calls_only_makefile_targets_the_help_documents() -> None:
    called = make_targets_called()
    assert {"test", "synth"} <= called
    assert called <= makefile_targets()
    help_text = re.search(
        r"^help:\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE
    )
    assert help_text is not None
    assert called <= documented_verbs(help_text.group(1))


def test_workflow_calls_only_targets_the_readme_documents() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not written yet")
    assert make_targets_called() <= documented_verbs(readme.read_text(encoding="utf-8"))


def test_documented_verbs_reads_lists() -> None:
    assert documented_verbs("make synth | deploy | diff | destroy   the CLI\nmake test\n") == {
        "synth",
        "deploy",
        "diff",
        "destroy",
        "test",
    }


def test_the_comment_job_updates_the_comment_the_account_diff_marks() -> None:
    gate_run = next(s["run"] for s in steps(jobs()["account-diff"]) if "endpoint_gate.py" in s.get("run", ""))
    marker = re.search(r"--marker (\S+)", gate_run)
    assert marker is not None
    (comment_step,) = steps(jobs()["comment"])
    assert comment_step["env"]["MARKER"] == f"<!-- {marker.group(1)} -->"
    assert "issues/comments/" in comment_step["run"]  # edits the existing comment instead of adding one


# --- Dependabot keeps the pins current ---------------------------------------------------------------

DEPENDABOT = ROOT / ".github" / "dependabot.yml"


def test_dependabot_updates_the_pinned_actions_and_passes_its_schema() -> None:
    result = schema_check(DEPENDABOT, "vendor.dependabot")
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {update["package-ecosystem"] for update in yaml.safe_load(DEPENDABOT.read_text())["updates"]}
    assert "github-actions" in ecosystems


def test_zizmor_catches_dependabot_without_a_cooldown(tmp_path: Path) -> None:
    text = DEPENDABOT.read_text(encoding="utf-8")
    without = "".join(
        line for line in text.splitlines(keepends=True) if "cooldown" not in line and "days" not in line
    )
    target = tmp_path / ".github" / "dependabot.yml"
    target.parent.mkdir()
    target.write_text(without, encoding="utf-8")
    status, findings = zizmor(target)
    assert status != 0
    assert "dependabot-cooldown" in findings
