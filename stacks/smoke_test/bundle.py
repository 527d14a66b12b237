"""The smoke-test Lambda's code: what goes in it, its content hash, and a local (Docker-free) bundler.

The bundle is the SDK's Lambda-platform wheels, ``runtime/handler.py`` and the part of the
``bidistream`` package that ``bidistream.smoke`` imports (found by reading its imports), plus
``bidistream/data/``. Wheels come from a wheelhouse that ``make setup`` downloads while online, so
``cdk synth`` installs them with ``pip --no-index`` and needs neither Docker nor the network.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
RUNTIME_DIR: Final = Path(__file__).resolve().parent / "runtime"
HANDLER_FILE: Final = RUNTIME_DIR / "handler.py"
REQUIREMENTS_FILE: Final = RUNTIME_DIR / "requirements.txt"
PACKAGE_NAME: Final = "bidistream"
PACKAGE_DIR: Final = REPO_ROOT / PACKAGE_NAME
ENTRY_MODULE: Final = "bidistream.smoke"
WHEELHOUSE: Final = REPO_ROOT / ".cache" / "lambda-wheels"

# python3.14 is the newest Lambda Python in aws-cdk-lib 2.275 (cdk-nag L1 wants the newest), and every
# wheel of the lock exists for it (awscrt as cp313-abi3).
LAMBDA_RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE: Final = lambda_.Architecture.X86_64
PIP_PLATFORM: Final = "manylinux2014_x86_64"
PIP_PYTHON_VERSION: Final = "3.14"
PIP_TIMEOUT_SECONDS: Final = 300


def lambda_code() -> lambda_.Code:
    """The bundle as Lambda code; the trigger and the canary share it (one asset, bundled once)."""
    return lambda_.Code.from_asset(
        str(RUNTIME_DIR),
        asset_hash=asset_hash(),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Only the local bundler runs: it builds the bundle or raises, never falls back to Docker.
            image=LAMBDA_RUNTIME.bundling_image,
            local=LocalPipBundler(),
        ),
    )


class BundleError(RuntimeError):
    """The Lambda bundle cannot be built; the message says what to do."""


def package_files() -> list[Path]:
    """The ``bidistream`` files the smoke check needs: its import closure, package inits and data/."""
    entry = _module_file(ENTRY_MODULE)
    if entry is None:
        raise BundleError(f"{ENTRY_MODULE} not found under {PACKAGE_DIR}: the smoke-test Lambda runs it")
    needed: set[Path] = set()
    pending = [entry]
    while pending:
        path = pending.pop()
        if path in needed:
            continue
        needed.add(path)
        pending.extend(_package_imports(path))
    for path in list(needed):  # every package on the way down needs its __init__.py
        for parent in path.relative_to(REPO_ROOT).parents:
            init = REPO_ROOT / parent / "__init__.py"
            if parent != Path(".") and init.is_file():
                needed.add(init)
    data_dir = PACKAGE_DIR / "data"
    if data_dir.is_dir():
        needed.update(
            path for path in data_dir.rglob("*") if path.is_file() and "__pycache__" not in path.parts
        )
    return sorted(needed)


def asset_hash() -> str:
    """A hash of everything that ends up in the bundle, so the Lambda changes exactly when they do."""
    digest = hashlib.sha256()
    digest.update(f"{LAMBDA_RUNTIME.name} {PIP_PLATFORM} {PIP_PYTHON_VERSION}\n".encode())
    for path in [HANDLER_FILE, REQUIREMENTS_FILE, *package_files()]:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """Builds the bundle with this machine's pip from the wheelhouse: no Docker, no network."""

    def __init__(self, *, wheelhouse: Path = WHEELHOUSE, requirements: Path = REQUIREMENTS_FILE) -> None:
        self._wheelhouse = wheelhouse
        self._requirements = requirements

    # jsii calls try_bundle(output_dir, options) positionally; the typed interface spells the options as
    # keywords. Accepting both keeps mypy and the runtime happy; the options are not needed here.
    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None, **_keywords: Any) -> bool:
        """Build the bundle in ``output_dir``; raise (never return False: that would start Docker)."""
        if not any(self._wheelhouse.glob("*.whl")):
            raise BundleError(
                f"no wheels in {self._wheelhouse}: run `make setup` (online) to download the smoke-test "
                "Lambda's wheels, or set smoke_test=false"
            )
        output = Path(output_dir)
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-index", "--find-links", str(self._wheelhouse), "--only-binary=:all:",
            "--platform", PIP_PLATFORM, "--implementation", "cp", "--python-version", PIP_PYTHON_VERSION,
            "--no-compile", "--target", str(output), "--requirement", str(self._requirements),
        ]  # fmt: skip
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
        )
        if result.returncode != 0:
            raise BundleError(
                f"pip could not install the smoke-test Lambda's wheels from {self._wheelhouse} "
                f"(run `make setup` to refresh it):\n{result.stderr.strip()}"
            )
        shutil.copy2(HANDLER_FILE, output / HANDLER_FILE.name)
        for path in package_files():
            target = output / path.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        return True


def _module_file(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_imports(path: Path) -> list[Path]:
    """Files of ``bidistream`` modules imported by ``path`` (absolute and relative imports)."""
    # The package a relative import starts from: the file's directory (for __init__.py too).
    package_parts = tuple(path.relative_to(REPO_ROOT).parent.parts)
    found: list[Path] = []
    for name in _imported_modules(path.read_text(encoding="utf-8"), str(path), package_parts):
        if name == PACKAGE_NAME or name.startswith(PACKAGE_NAME + "."):
            module_path = _module_file(name)
            if module_path is not None:
                found.append(module_path)
    return found


# Keyed on the source text: every synth hashes the bundle (the smoke test and the canary each do), and
# parsing the same files again was most of that cost; a changed file is a new key.
@functools.lru_cache(maxsize=256)
def _imported_modules(source: str, filename: str, package_parts: tuple[str, ...]) -> tuple[str, ...]:
    """Every module name ``source`` imports, relative imports resolved from ``package_parts``."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package_parts[: len(package_parts) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.extend([base, *(f"{base}.{alias.name}" for alias in node.names)])
    return tuple(names)
