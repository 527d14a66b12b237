"""mypy checks the app against every aws_cdk module it uses, though it skips the rest (pyproject.toml).

The skip keeps a cold ``mypy`` at about 11 s instead of 80 s; the price is that a module missing from the
checked list is seen as ``Any``, so a wrong argument to it would pass silently. This test keeps the list
complete: every aws_cdk module app.py and stacks/ import, and its reference interfaces, are checked.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_SOURCES = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "stacks").rglob("*.py"))]


def imported_cdk_modules(source: Path) -> set[str]:
    """The ``aws_cdk`` modules (not names from them) that ``source`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "aws_cdk")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aws_cdk":
            found.add(node.module)
            for alias in node.names:  # `from aws_cdk import aws_iam`: a submodule, not a class
                if importlib.util.find_spec(f"{node.module}.{alias.name}") is not None:
                    found.add(f"{node.module}.{alias.name}")
    return found


def mypy_followed_modules() -> tuple[set[str], set[str]]:
    """(modules mypy checks in full, module patterns it skips) from pyproject.toml's overrides."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    followed: set[str] = set()
    skipped: set[str] = set()
    for override in config.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        if override.get("follow_imports") == "normal":
            followed.update(modules)
        elif override.get("follow_imports") == "skip":
            skipped.update(modules)
    return followed, skipped


def test_every_aws_cdk_module_the_app_imports_is_type_checked() -> None:
    used = set().union(*(imported_cdk_modules(source) for source in CDK_SOURCES))
    candidates = {f"aws_cdk.interfaces.{module.removeprefix('aws_cdk.')}" for module in used}
    interfaces = {module for module in candidates if importlib.util.find_spec(module) is not None}
    followed, skipped = mypy_followed_modules()
    assert "aws_cdk.*" in skipped  # what the list below undoes, module by module
    assert {"aws_cdk", "aws_cdk.aws_iam", "aws_cdk.aws_sagemaker"} <= used  # the scan sees imports
    assert used | interfaces <= followed, sorted((used | interfaces) - followed)


def test_the_scan_finds_a_submodule_import_and_ignores_a_class_import(tmp_path: Path) -> None:
    source = tmp_path / "example.py"
    source.write_text(
        "import aws_cdk as cdk\n"
        "from aws_cdk import aws_ec2 as ec2, Duration\n"
        "from aws_cdk.aws_s3 import Bucket\n"
    )
    assert imported_cdk_modules(source) == {"aws_cdk", "aws_cdk.aws_ec2", "aws_cdk.aws_s3"}
