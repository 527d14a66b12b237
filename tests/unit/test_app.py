"""app.py: the full synth offline with no credentials, CDK's validation and cdk-nag on; bad settings refused.

The full synth runs app.py's ``main`` in the test process (jsii and aws-cdk-lib are loaded there already);
the refused setting runs ``python app.py`` as the CLI starts it, beside it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import CDK_JSON_CONTEXT, NO_BUNDLING

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_app(
    context: dict[str, Any], outdir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python app.py`` with the context the CLI would pass, and no AWS credentials or account."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**CDK_JSON_CONTEXT, **NO_BUNDLING, **context}),
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_app(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for a started ``python app.py`` (killed after 120 s) and return what it printed."""
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module", autouse=True)
def bad_setting_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The refused run, started with the module so it runs beside the in-process synth."""
    outdir = tmp_path_factory.mktemp("bad-instance-count")
    process = start_app({"instance_count": "0"}, outdir)
    yield process, outdir
    if process.poll() is None:  # the test did not get to wait for it
        process.kill()
        process.communicate()


def test_app_synthesizes_offline_without_credentials_and_passes_cdk_nag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """app.py's ``main`` in this process, as the CLI would run it apart from the process and the context's
    way in: cdk.json's context (its ``validateAgainstDefaultRules`` makes the built-in CloudFormation
    validation an error gate, which is on here as in every CLI synth), cdk-nag on, no account or region.
    The ``python app.py`` process, its ``CDK_CONTEXT_JSON`` and its exit code are covered by the refused
    run below; this process's jsii and modules are loaded already, so the full synth costs only itself.
    """
    import aws_cdk as cdk

    from app import main

    for name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    app = cdk.App(
        # Version reporting on, as the CLI passes it by default.
        context={**CDK_JSON_CONTEXT, **NO_BUNDLING, "aws:cdk:version-reporting": True},
        outdir=str(tmp_path),
        builtin_cloud_formation_validation=True,  # the test apps default both off (conftest.py)
        tree_metadata=True,
    )
    assert main(app) == 0
    template = json.loads((tmp_path / "BidiStream.template.json").read_text())
    assert any(resource["Type"] == "AWS::SageMaker::Endpoint" for resource in template["Resources"].values())
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"] == []  # cdk-nag ran (the report exists) and found nothing unacknowledged
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artifacts"]["BidiStream"]["environment"] == "aws://unknown-account/unknown-region"
    assert "missing" not in manifest  # no context lookup: the CLI would need no account to synthesize
    # CDK's usage data names the constructs used (general usage data) but not how: cdk.json turns off
    # the additional usage data (each construct's property names and method calls, about 7 KB here).
    analytics = template["Resources"]["CDKMetadata"]["Properties"]["Analytics"]
    prefix, _, encoded = analytics.partition(":deflate64:")
    assert prefix == "v2"
    reported = zlib.decompress(base64.b64decode(encoded), wbits=16 + zlib.MAX_WBITS).decode()
    assert "sagemaker.{CfnModel,CfnEndpointConfig,CfnEndpoint}" in reported
    assert "[" not in reported and '"' not in reported, reported[:300]  # no property or method records


def test_bad_setting_fails_synth_with_a_message_not_a_traceback(
    bad_setting_run: tuple[subprocess.Popen[str], Path],
) -> None:
    """``python app.py`` as the CLI starts it: context in ``CDK_CONTEXT_JSON``, exit code 1, one line."""
    process, tmp_path = bad_setting_run
    result = finish_app(process)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: setting 'instance_count' = '0' is not allowed: expected an integer >= 1"
    )
    assert not (tmp_path / "BidiStream.template.json").exists()


def test_jsii_runs_node_with_webassembly_left_unoptimized() -> None:
    """The node app.py has jsii start (unless JSII_NODE is set) passes ``--liftoff-only`` to V8, and the
    test processes run the same one."""
    from app import JSII_NODE

    result = subprocess.run(
        [str(JSII_NODE), "-p", "process.execArgv[0]"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr  # node refuses a V8 flag it does not know
    assert result.stdout.strip() == "--liftoff-only"
    assert Path(os.environ["JSII_NODE"]).resolve() == JSII_NODE
