"""Time the smoke check, the work each streaming-canary run does, against a local endpoint.

Starts the model container's server and the local endpoint (as the e2e tests do) on loopback, runs
``bidistream.smoke.run_smoke`` in echo, transcribe and speak mode a few times each, and prints the median
and maximum check time. A Lambda adds its own start-up (importing the SDK and awscrt) on a cold start;
these figures back the canary's cost estimate in the README.

    .venv/bin/python bench/bench_smoke_check.py          # 5 runs per mode (~1 min)
    .venv/bin/python bench/bench_smoke_check.py --runs 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bidistream.smoke import run_smoke
from tests.support.processes import free_port, model_server, start_process, wait_until

MODES = (("echo", None), ("transcribe", "encoding=linear16&sample_rate=16000"), ("speak", None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
    }
    os.environ.update(credentials)
    with model_server() as server, tempfile.TemporaryDirectory() as certs:
        port = free_port()
        argv = [sys.executable, "-m", "bidistream", "endpoint", "--port", str(port)]
        argv += ["--model-url", server.base_url, "--cert-dir", certs]
        endpoint = start_process(argv, port=port, env=credentials)
        try:
            wait_until(lambda: "ready: " in endpoint.log_path.read_text(), timeout=30, what="the endpoint")
            for mode, query in MODES:
                seconds = []
                for _ in range(args.runs):
                    report = asyncio.run(
                        run_smoke(
                            "bench",
                            region="us-east-1",
                            mode=mode,
                            endpoint_uri=f"https://127.0.0.1:{port}",
                            ca_file=f"{certs}/ca.pem",
                            query_string=query,
                            budget_seconds=60,
                        )
                    )
                    seconds.append(report.elapsed_seconds)
                print(
                    f"{mode:<10} runs={len(seconds)} median={statistics.median(seconds):.2f}s "
                    f"max={max(seconds):.2f}s"
                )
        finally:
            endpoint.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
