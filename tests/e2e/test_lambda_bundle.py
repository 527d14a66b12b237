"""The smoke-test Lambda bundle holds the SDK (and its dependencies), awscrt and this package only: the
modules it imports must load without the local endpoint's libraries or the container's code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.processes import REPO_ROOT

NOT_IN_THE_BUNDLE = ("h2", "hpack", "hyperframe", "websockets", "cryptography", "model_server")


def import_with_blocked(modules: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {NOT_IN_THE_BUNDLE!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is not in the Lambda bundle")
                return None
        sys.meta_path.insert(0, Block())
        import {modules}
        from importlib import resources
        assert resources.files("bidistream.data").joinpath("speech-sample.wav").is_file()
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_smoke_module_imports_without_the_endpoint_or_container_libraries() -> None:
    result = import_with_blocked("bidistream.smoke")

    assert result.returncode == 0, result.stderr


def test_the_blocker_catches_a_module_that_needs_them() -> None:
    result = import_with_blocked("bidistream.endpoint.server")

    assert result.returncode != 0
    assert "is not in the Lambda bundle" in result.stderr
