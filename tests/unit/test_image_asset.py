"""The container image asset as the CDK CLI will build it: read from the cloud assembly's asset manifest.

CreateModel rejects an OCI image manifest, so the build options in ``*.assets.json`` (what cdk-assets
turns into ``docker build`` flags) must ask for Docker v2 schema 2 media types.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr_assets as ecr_assets

from stacks.endpoint_stack import CONTAINER_DIR
from stacks.settings import Settings, SettingsError
from tests.container.test_dockerfile import DOCKERFILE, final_stage_instructions
from tests.unit.conftest import PACKAGE_ARN, assembly_of


def docker_image_sources(assembly_dir: Path) -> list[dict[str, Any]]:
    """The ``source`` of every Docker image asset in every asset manifest of the assembly."""
    sources = []
    for manifest in sorted(assembly_dir.glob("*.assets.json")):
        images = json.loads(manifest.read_text(encoding="utf-8")).get("dockerImages", {})
        sources.extend(image["source"] for image in images.values())
    return sources


def oci_problems(source: dict[str, Any]) -> list[str]:
    """Why an image built from ``source`` could be pushed with an OCI manifest CreateModel rejects."""
    outputs = source.get("dockerOutputs", [])
    image_outputs = [output for output in outputs if "type=image" in output.split(",")]
    if len(image_outputs) != 1:
        return [f"expected one type=image output, got {outputs}"]
    options = dict(part.split("=", 1) for part in image_outputs[0].split(",") if "=" in part)
    if options.get("oci-mediatypes") != "false":
        return [f"{image_outputs[0]!r} does not set oci-mediatypes=false"]
    return []


@pytest.fixture(scope="module")
def image_source() -> dict[str, Any]:
    (source,) = docker_image_sources(assembly_of())
    return source


def test_image_asset_asks_for_docker_v2_schema_2_media_types(image_source: dict[str, Any]) -> None:
    assert oci_problems(image_source) == []
    assert image_source["dockerOutputs"] == ["type=image,oci-mediatypes=false"]


def test_image_asset_is_built_for_x86_64_from_the_container_directory(image_source: dict[str, Any]) -> None:
    assert image_source["platform"] == "linux/amd64"
    assert image_source["directory"].startswith("asset.")


def test_check_catches_an_asset_with_default_outputs(tmp_path: Path) -> None:
    # The twin: a plain DockerImageAsset (what the stack had before) passes no outputs.
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Plain", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    ecr_assets.DockerImageAsset(stack, "Image", directory=str(CONTAINER_DIR))
    (source,) = docker_image_sources(Path(app.synth().directory))
    assert oci_problems(source) == ["expected one type=image output, got []"]
    assert oci_problems({"dockerOutputs": ["type=image,oci-mediatypes=true"]}) == [
        "'type=image,oci-mediatypes=true' does not set oci-mediatypes=false"
    ]


def test_model_package_mode_has_no_image_to_build() -> None:
    assert docker_image_sources(assembly_of({"model_package_arn": PACKAGE_ARN})) == []


def test_image_runs_as_the_non_root_user_unless_set_to_root(image_source: dict[str, Any]) -> None:
    assert image_source["dockerBuildArgs"] == {"RUN_AS_USER": "10001:10001"}
    (source,) = docker_image_sources(assembly_of({"container_user": "root"}))
    assert source["dockerBuildArgs"] == {"RUN_AS_USER": "0:0"}


@pytest.mark.parametrize("value", ["admin", "0", "10001", "-1:-1", "10001:10001; rm"])
def test_container_user_must_be_root_or_numeric_uid_gid(value: str) -> None:
    with pytest.raises(
        SettingsError, match=rf"setting 'container_user' = '{re.escape(value)}' is not allowed"
    ):
        Settings.from_context({"container_user": value})


# The pinned CLI's bundled cdk-assets: how it runs `docker build` for an image asset.
CDK_CLI_BUNDLE = Path(__file__).resolve().parents[2] / "node_modules" / "aws-cdk" / "lib" / "index.js"


def docker_build_problems(bundle: str) -> list[str]:
    """Why the CLI's `docker build` would not carry the asset's outputs, or would add attestations."""
    start = bundle.find("async build(options) {")
    body = bundle[start : bundle.find("async login(", start)] if start >= 0 else ""
    expected = {
        "a `docker build` command": '"build",',
        "every asset output as --output=<it>": "options.outputs.map((output) => [`--output=${output}`])",
        "no default provenance attestation": 'BUILDX_NO_DEFAULT_ATTESTATIONS: "1"',
    }
    problems = [what for what, text in expected.items() if text not in body]
    if "outputs: source.dockerOutputs" not in bundle:
        problems.append("the asset's dockerOutputs passed to the build")
    return problems


def test_pinned_cli_passes_the_outputs_to_docker_build_without_attestations() -> None:
    # What the README's build requirement rests on: `docker build --output=type=image,oci-mediatypes=false`
    # (BuildKit through buildx), with BUILDX_NO_DEFAULT_ATTESTATIONS=1 so no attestation makes an index.
    assert docker_build_problems(CDK_CLI_BUNDLE.read_text(encoding="utf-8")) == []
    # The twin: a CLI that dropped the outputs is caught.
    assert docker_build_problems('async build(options) { "build", async login(') == [
        "every asset output as --output=<it>",
        "no default provenance attestation",
        "the asset's dockerOutputs passed to the build",
    ]


def unreadable_context_copies(dockerfile: str, context: Path = CONTAINER_DIR) -> list[str]:
    """Final-stage COPY/ADD lines from the build context whose files the non-root user may not read.

    The context keeps the checkout's modes (a umask of 027 leaves "others" nothing), and the image runs as
    a uid that owns none of them, so each such copy must set modes that let everyone read (and enter).
    """
    problems = []
    for keyword, arguments in final_stage_instructions(dockerfile):
        if keyword not in {"COPY", "ADD"} or "--from=" in arguments:
            continue
        chmod = re.search(r"--chmod=([0-7]{3,4})(?:\s|$)", arguments)
        mode = 0 if chmod is None else int(chmod[1], 8)
        sources = [word for word in arguments.split()[:-1] if not word.startswith("--")]
        needed = 0o005 if any((context / source).is_dir() for source in sources) else 0o004
        if mode & needed != needed:
            problems.append(f"{keyword} {arguments}")
    return problems


def test_the_non_root_user_can_read_what_the_image_copies_from_the_context() -> None:
    assert unreadable_context_copies(DOCKERFILE.read_text(encoding="utf-8")) == []
    # The twins: the copy as it was (the checkout's modes), and a directory others cannot enter.
    for copy in ("COPY model_server ./model_server", "COPY --chmod=0644 model_server ./model_server"):
        assert unreadable_context_copies(f"FROM x\n{copy}\n") == [copy]
    assert unreadable_context_copies("FROM x\nCOPY --chmod=0644 requirements.txt ./\n") == []
