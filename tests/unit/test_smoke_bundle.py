"""The smoke-test Lambda bundle: the right files, a hash that follows them, and a Docker-free bundler."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest
from aws_cdk import BundlingOptions

from stacks.smoke_test import bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
OPTIONS = BundlingOptions(image=bundle.LAMBDA_RUNTIME.bundling_image)


def relative(paths: list[Path], root: Path = REPO_ROOT) -> set[str]:
    return {str(path.relative_to(root)) for path in paths}


def pins(text: str) -> dict[str, str]:
    """name -> version of every ``name==version`` line (extras dropped, names normalised)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#]+)", line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return found


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of what the bundle reads, with the bundle module pointed at it."""
    root = tmp_path / "repo"
    shutil.copytree(
        REPO_ROOT / "bidistream", root / "bidistream", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(bundle.RUNTIME_DIR, root / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(bundle, "REPO_ROOT", root)
    monkeypatch.setattr(bundle, "PACKAGE_DIR", root / "bidistream")
    monkeypatch.setattr(bundle, "HANDLER_FILE", root / "runtime" / "handler.py")
    monkeypatch.setattr(bundle, "REQUIREMENTS_FILE", root / "runtime" / "requirements.txt")
    return root


def test_package_files_are_the_smoke_checks_import_closure_and_data() -> None:
    files = relative(bundle.package_files())
    assert {
        "bidistream/__init__.py",
        "bidistream/smoke.py",
        "bidistream/client.py",
        "bidistream/errors.py",
        "bidistream/speech.py",  # the speak check measures audio in the query's format with it
    } <= files
    assert "bidistream/data/speech-sample.wav" in files
    # The CLI and the local endpoint (TLS, HTTP/2 server) are not part of the smoke check.
    assert "bidistream/__main__.py" not in files
    assert not {path for path in files if path.startswith("bidistream/endpoint/")}


def test_handlers_are_the_shared_smoke_check_lambda_handlers() -> None:
    # The trigger and the canary both run bidistream.smoke: the import is all the entry point holds.
    text = bundle.HANDLER_FILE.read_text()
    assert "from bidistream.smoke import canary_handler, lambda_handler" in text


def test_hash_changes_when_a_bundled_module_changes(repo_copy: Path) -> None:
    before = bundle.asset_hash()
    assert bundle.asset_hash() == before
    (repo_copy / "bidistream" / "client.py").write_text(
        (repo_copy / "bidistream" / "client.py").read_text() + "\n"
    )
    assert bundle.asset_hash() != before


def test_hash_changes_when_the_clip_or_the_sdk_pin_changes(repo_copy: Path) -> None:
    before = bundle.asset_hash()
    (repo_copy / "bidistream" / "data" / "speech-sample.wav").write_bytes(b"RIFF")
    after_clip = bundle.asset_hash()
    assert after_clip != before
    requirements = repo_copy / "runtime" / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("==0.12.0", "==0.12.1", 1))
    assert bundle.asset_hash() != after_clip


def test_hash_ignores_modules_the_smoke_check_does_not_import(repo_copy: Path) -> None:
    before = bundle.asset_hash()
    main = repo_copy / "bidistream" / "__main__.py"
    main.write_text(main.read_text() + "\n# not in the bundle\n")
    assert bundle.asset_hash() == before


def test_missing_smoke_module_is_a_clear_error(repo_copy: Path) -> None:
    (repo_copy / "bidistream" / "smoke.py").unlink()
    with pytest.raises(bundle.BundleError, match=r"bidistream\.smoke not found"):
        bundle.package_files()


def test_lambda_lock_pins_the_same_versions_as_the_project() -> None:
    lock = pins(bundle.REQUIREMENTS_FILE.read_text())
    client = pins((REPO_ROOT / "requirements-client.txt").read_text())
    constraints = pins((REPO_ROOT / "constraints.txt").read_text())
    sdk = "aws-sdk-sagemaker-runtime-http2"
    assert lock[sdk] == client[sdk]
    assert "[awscrt]" in next(
        line for line in bundle.REQUIREMENTS_FILE.read_text().splitlines() if line.startswith(sdk)
    )
    assert {name: constraints.get(name) for name in lock} == lock


def test_bundler_without_wheelhouse_says_to_run_make_setup(tmp_path: Path) -> None:
    bundler = bundle.LocalPipBundler(wheelhouse=tmp_path / "missing")
    with pytest.raises(bundle.BundleError, match=r"run `make setup`"):
        bundler.try_bundle(str(tmp_path / "out"), OPTIONS)


def write_wheel(wheelhouse: Path, name: str, version: str) -> None:
    """A minimal pure-Python wheel, so the bundler's pip run needs no network."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheelhouse / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")


def test_bundler_installs_from_the_wheelhouse_offline_and_adds_handler_and_package(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    write_wheel(wheelhouse, "tinydep", "1.0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinydep==1.0\n")
    output = tmp_path / "out"
    output.mkdir()
    bundler = bundle.LocalPipBundler(wheelhouse=wheelhouse, requirements=requirements)
    assert bundler.try_bundle(str(output), OPTIONS)
    assert (output / "tinydep" / "__init__.py").is_file()
    assert (output / "handler.py").read_text() == bundle.HANDLER_FILE.read_text()
    bundled = relative([path for path in output.rglob("*") if path.is_file()], output)
    assert relative(bundle.package_files()) <= bundled
    assert "bidistream/__main__.py" not in bundled


def test_bundler_reports_a_version_missing_from_the_wheelhouse(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    write_wheel(wheelhouse, "tinydep", "1.0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinydep==2.0\n")
    bundler = bundle.LocalPipBundler(wheelhouse=wheelhouse, requirements=requirements)
    with pytest.raises(bundle.BundleError, match=r"(?s)pip could not install .*`make setup`.*tinydep==2.0"):
        bundler.try_bundle(str(tmp_path / "out"), OPTIONS)
