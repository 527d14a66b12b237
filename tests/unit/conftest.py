"""Build the real stack in-process for template tests: no AWS credentials, no Docker, no network.

The apps get cdk.json's context (its feature flags shape the template) with bundling skipped
(``aws:cdk:bundling-stacks: []``), the account and region are given explicitly, and jsii starts once
per test process. ``shared_stack`` builds each distinct set of settings once per
test process for the tests that only read a stack; ``template_of`` synthesizes it once and hands every
caller the same read-only ``Template`` (its queries return fresh copies), ``assembly_of`` its folder.

The apps built here skip the CDK's built-in CloudFormation validation: its engine costs several CPU
seconds to start in every process and more per synth, and one validated synth of the app is enough:
``test_app.py`` runs it as the CLI does (an error gate through cdk.json's
``@aws-cdk/core:validateAgainstDefaultRules``), as does ``make synth``, and cfn-lint checks the
template variants (``test_cfn_lint.py``). They write no ``tree.json`` either.
"""

from __future__ import annotations

import os

# Before aws_cdk starts node: jsii's end-of-life banner for Node 20 is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# jsii's node compiles WebAssembly with V8's baseline compiler only, as app.py's does (see the script):
# after test_app.py's synth, V8 would otherwise spend about 1.4 CPU s optimizing the built-in validator's
# module in the background, in a worker that never runs it again. Same results; JavaScript is not affected.
os.environ.setdefault(
    "JSII_NODE", os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "stacks", "node-liftoff")
)

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

# aws_cdk is imported where it is used: importing it starts jsii's node process, which the pytest-xdist
# controller (it loads this file but runs no test) does not need.
if TYPE_CHECKING:
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from stacks.endpoint_stack import EndpointStack

ACCOUNT = "123456789012"
REGION = "eu-west-1"
NO_BUNDLING = {"aws:cdk:bundling-stacks": []}
#: The context the CLI passes from cdk.json: the app's feature flags and default settings.
CDK_JSON_CONTEXT: Final[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[2] / "cdk.json").read_text(encoding="utf-8")
)["context"]
PACKAGE_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/deepgram-nova-3-example/1"
KMS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# Workers for `pytest tests/unit` when no -n is given: one per core, at most this many (each starts
# its own jsii node process and loads aws-cdk-lib, about 2 CPU seconds).
MAX_WORKERS: Final = 4

# Files that mostly wait on other processes (app.py, pip) or lint many templates, in the order the
# workers take them: first, so no worker is left running one of them after the other has finished
# (pytest-xdist would otherwise hand out the files with the most tests first, and these last).
SLOW_FILES: Final = (
    "test_app.py",
    "test_cfn_lint.py",
    "test_smoke_bundle.py",
    "test_model_package.py",
    "test_smoke_test.py",
)

# Files that run on the same worker as another file, for what a process loads or builds once: cfn-lint
# and its rules (test_model_package.py lints the region rule), and the smoke-test and canary variants.
SAME_WORKER_AS: Final = {
    "test_model_package.py": "test_cfn_lint.py",
    "test_canary.py": "test_smoke_test.py",
}

_STACKS: dict[str, EndpointStack] = {}
_TEMPLATES: dict[str, Template] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``pytest tests/unit`` runs on every core with pytest-xdist, a test file per worker.

    Named test files, ``-n 0`` or ``--pdb`` run in one process. pytest calls this hook only when this
    directory (or a file in it) is what it was asked to run, so the rest of the suite keeps running in
    one process. A file goes to one worker, so its module fixtures and the worker's template cache
    synthesize each template once.
    """
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return  # an xdist worker, or xdist is not installed
    if config.option.numprocesses is not None or config.option.usepdb or config.option.collectonly:
        return  # -n given, or a debugger wants the tests in this process
    workers = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    if workers < 2 or not any(Path(str(arg).split("::")[0]).is_dir() for arg in config.args):
        return  # one core, or only test files named: starting workers would cost more than it saves
    config.option.numprocesses = workers
    if config.option.dist == "no":
        config.option.dist = "loadfile"
        config.option.loadscopereorder = False  # files go out in collection order (SLOW_FILES first)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: xdist may not be installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The loadfile distribution set up above, with the files of ``SAME_WORKER_AS`` on one worker."""
    if config.option.dist != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    here = Path(__file__).parent

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            path = Path(scope)
            if path.name in SAME_WORKER_AS and (config.rootpath / path).parent == here:
                return str(path.with_name(SAME_WORKER_AS[path.name]))
            return scope

    return Scheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This directory's ``SLOW_FILES`` run first, in that order; every other test keeps its place."""
    here = Path(__file__).parent
    rank = {name: index for index, name in enumerate(SLOW_FILES)}
    items.sort(
        key=lambda item: rank.get(item.path.name, len(rank)) if item.path.parent == here else len(rank)
    )


@pytest.fixture(scope="package", autouse=True)
def _apps_skip_builtin_validation_and_tree() -> Iterator[None]:
    """Every ``cdk.App`` made by these tests defaults to ``builtin_cloud_formation_validation=False`` and
    ``tree_metadata=False``: no test reads ``tree.json`` (the construct tree for the console; the
    templates, asset manifests and validation reports do not change), and writing it took about 40% of
    each synth's CPU.
    """
    import aws_cdk as cdk

    app_init = cdk.App.__init__

    def init(self: App, **props: Any) -> None:
        props.setdefault("builtin_cloud_formation_validation", False)
        props.setdefault("tree_metadata", False)
        app_init(self, **props)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cdk.App, "__init__", init)
        yield


def build_stack(
    context: Mapping[str, Any] | None = None,
    *,
    container_directory: Path | None = None,
    app_context: Mapping[str, Any] | None = None,
) -> EndpointStack:
    """The app's stack for these settings (given as CDK context, exactly as the CLI would pass them).

    ``container_directory`` is the image's build context, the repository's ``container/`` by default.
    """
    import aws_cdk as cdk

    from stacks.endpoint_stack import CONTAINER_DIR, EndpointStack
    from stacks.settings import Settings

    settings = Settings.from_context(dict(context or {}))
    # cdk.json's context too: its feature flags change the template (literal partitions in ARNs, IAM
    # policy minimizing, ...), so the tests check what `cdk synth` and `cdk deploy` produce.
    app = cdk.App(context={**CDK_JSON_CONTEXT, **NO_BUNDLING, **(app_context or {})})
    return EndpointStack(
        app,
        settings.stack_name,
        settings=settings,
        container_directory=container_directory or CONTAINER_DIR,
        env=cdk.Environment(account=ACCOUNT, region=REGION),
    )


def shared_stack(context: Mapping[str, Any] | None = None) -> EndpointStack:
    """The stack for these settings, built once per test process and shared: only to read.

    A test that changes a stack (adds a construct, a property override, an aspect or cdk-nag) or
    synthesizes it into a folder of its own builds one with ``build_stack``.
    """
    key = json.dumps(context or {}, sort_keys=True)
    if key not in _STACKS:
        _STACKS[key] = build_stack(context)
    return _STACKS[key]


def assembly_of(context: Mapping[str, Any] | None = None) -> Path:
    """The cloud assembly folder of the shared stack's synthesis (the same one ``template_of`` reads)."""
    from aws_cdk import App

    app = shared_stack(context).node.root
    assert isinstance(app, App)
    return Path(app.synth().directory)


def template_of(context: Mapping[str, Any] | None = None, **kwargs: Any) -> Template:
    """The template of ``shared_stack(context)``, synthesized once per test process.

    A template built from another container folder is synthesized on every call: tests change the
    folder's files between calls.
    """
    from aws_cdk.assertions import Template

    if kwargs:
        return fresh_template_of(context, **kwargs)
    key = json.dumps(context or {}, sort_keys=True)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = Template.from_stack(shared_stack(context))
    return _TEMPLATES[key]


def fresh_template_of(context: Mapping[str, Any] | None = None, **kwargs: Any) -> Template:
    """A new synthesis, never the cached one (for tests that compare two syntheses)."""
    from aws_cdk.assertions import Template

    return Template.from_stack(build_stack(context, **kwargs))


def only_resource(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    """The logical ID and definition of the one resource of ``resource_type``."""
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def role_statements(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of every AWS::IAM::Policy attached to the role (inline policies included)."""
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    role = template.to_json()["Resources"][role_logical_id]["Properties"]
    for inline in role.get("Policies", []):
        statements.extend(inline["PolicyDocument"]["Statement"])
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in as_list(statement["Action"])}
