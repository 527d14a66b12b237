"""Benchmark the synthesized-template unit tests and the app's synth against the floor: an empty CDK app.

In one run, so load on the machine hits every figure alike:

* empty-app synth: an ``aws_cdk.App`` with one empty ``Stack``, synthesized by the pinned CLI
  (``node_modules/.bin/cdk synth -q``) into a warm output folder, median of N;
* the same empty app with the node app.py gives jsii (``stacks/node-liftoff``: WebAssembly left
  unoptimized), so the full app can also be compared like for like;
* full-app synth: this repository's app, the same way (the Lambda bundle is built once in the warm-up);
* ``pytest tests/unit``: wall time and test count, with the options ``pyproject.toml`` gives pytest;

and the two ratios against their targets (unit tests <= 3x one empty-app synth, full app <= 1.3x).
The synths alternate (empty, empty with app.py's node, full, empty, ...) so drift hits all alike. Each
figure also has the CPU time (user + sys) of its whole process tree: on a machine other work keeps
busy, wall times mostly measure the load, and CPU seconds compare better across runs.

    .venv/bin/python bench/bench_unit_tests.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
LIFTOFF_NODE = REPO_ROOT / "stacks" / "node-liftoff"  # what app.py sets JSII_NODE to
UNIT_TESTS_TARGET = 3.0  # x one empty-app synth
FULL_SYNTH_TARGET = 1.3  # x one empty-app synth

EMPTY_APP = """\
import aws_cdk as cdk

app = cdk.App()
cdk.Stack(app, "Empty")
app.synth()
"""
# What `make` exports: no jsii end-of-life banner, no network for telemetry or a version check.
CDK_ENV = {
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "CDK_DISABLE_VERSION_CHECK": "1",
}


def empty_app(directory: Path) -> Path:
    """A CDK project holding only the empty app, with the repository's offline CLI settings."""
    (directory / "app.py").write_text(EMPTY_APP)
    cdk_json = {"app": f"{sys.executable} app.py", "notices": False, "context": {"cli-telemetry": False}}
    (directory / "cdk.json").write_text(json.dumps(cdk_json))
    return directory


def children_cpu() -> float:
    """CPU seconds (user + sys) of every finished child process so far, and of their children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def synth_seconds(project: Path, outdir: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU time of one `cdk synth -q` of ``project`` into ``outdir``; raises if it fails."""
    cpu_before = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        [str(CDK), "synth", "-q", "-o", str(outdir)],
        cwd=project,
        env={**os.environ, **CDK_ENV, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"cdk synth in {project} failed:\n{result.stderr}")
    return elapsed, children_cpu() - cpu_before


def unit_tests() -> tuple[float, float, str, bool]:
    """Wall and CPU time, pytest's summary line and whether every test passed, for `pytest tests/unit`."""
    cpu_before = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env={**os.environ, **CDK_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    lines = result.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else result.stderr.strip()[-500:]
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-2000:], sep="\n", file=sys.stderr)
    return elapsed, cpu, summary, result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed synths of each app (median)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-unit-") as scratch:
        root = Path(scratch)
        project = empty_app(Path(tempfile.mkdtemp(dir=root)))
        empty_out, full_out = root / "empty.out", root / "full.out"
        # Warm-up: fills both output folders (and builds the smoke-test Lambda bundle once).
        synth_seconds(project, empty_out)
        synth_seconds(REPO_ROOT, full_out)
        empty: list[tuple[float, float]] = []
        empty_liftoff: list[tuple[float, float]] = []
        full: list[tuple[float, float]] = []
        for _ in range(args.runs):
            empty.append(synth_seconds(project, empty_out))
            empty_liftoff.append(synth_seconds(project, empty_out, {"JSII_NODE": str(LIFTOFF_NODE)}))
            full.append(synth_seconds(REPO_ROOT, full_out))
        tests_seconds, tests_cpu, tests_summary, tests_ok = unit_tests()

    empty_median, liftoff_median, full_median = (
        statistics.median(wall for wall, _ in runs) for runs in (empty, empty_liftoff, full)
    )
    empty_cpu, full_cpu = (statistics.median(cpu for _, cpu in runs) for runs in (empty, full))
    unit_ratio, full_ratio = tests_seconds / empty_median, full_median / empty_median
    print(f"load average (1 min) at start {load_before:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"empty-app synth (cdk synth -q, warm): median {empty_median:.2f} s  runs {_runs(empty)}")
    print(f"empty-app synth, app.py's node:       median {liftoff_median:.2f} s  runs {_runs(empty_liftoff)}")
    print(f"full-app synth  (cdk synth -q, warm): median {full_median:.2f} s  runs {_runs(full)}")
    print(f"pytest tests/unit: {tests_seconds:.1f} s, {tests_cpu:.1f} CPU s ({tests_summary})")
    print(f"unit tests / empty synth: {_verdict(unit_ratio, UNIT_TESTS_TARGET)}")
    print(f"full synth / empty synth: {_verdict(full_ratio, FULL_SYNTH_TARGET)}")
    print(f"full synth / empty synth with app.py's node (like for like): {full_median / liftoff_median:.2f}x")
    print(
        f"in CPU seconds (medians): empty synth {empty_cpu:.2f}, full synth {full_cpu:.2f} "
        f"({full_cpu / empty_cpu:.2f}x), unit tests {tests_cpu:.1f} ({tests_cpu / empty_cpu:.2f}x)"
    )
    return 0 if tests_ok else 1


def _runs(values: list[tuple[float, float]]) -> str:
    return " / ".join(f"{wall:.2f} ({cpu:.2f} CPU)" for wall, cpu in values)


def _verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x (target <= {target}x) {'ok' if ratio <= target else 'MISSED'}"


if __name__ == "__main__":
    sys.exit(main())
