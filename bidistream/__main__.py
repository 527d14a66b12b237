"""The ``bidistream`` command line: invoke, endpoint, local, smoke."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bidistream.errors import EXIT_CODE_TABLE, ExitCode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bidistream",
        description="Stream to a SageMaker AI endpoint both ways with the real SDK, or run a local one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes:\n{EXIT_CODE_TABLE}",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    endpoint = commands.add_parser(
        "endpoint",
        help="run a local SageMaker runtime endpoint (HTTP/2 + TLS + SigV4) in front of a container",
        description="Serve InvokeEndpointWithBidirectionalStream locally. Checks signatures against "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) in its own environment.",
    )
    endpoint.add_argument("--host", default="127.0.0.1")
    endpoint.add_argument("--port", type=int, default=8443)
    endpoint.add_argument("--model-url", default="http://127.0.0.1:8080", help="the container's base URL")
    endpoint.add_argument(
        "--cert-dir", type=Path, default=None, help="where to write ca.pem and the certificate"
    )
    endpoint.add_argument("--ping-interval", type=float, default=60.0, help="seconds between pings")
    endpoint.add_argument("--max-missed-pongs", type=int, default=5, help="close after this many unanswered")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "endpoint":
        from bidistream.endpoint.serve import serve
        from bidistream.endpoint.tls import default_cert_dir

        try:
            asyncio.run(
                serve(
                    host=args.host,
                    port=args.port,
                    model_url=args.model_url,
                    cert_dir=args.cert_dir or default_cert_dir(),
                    ping_interval=args.ping_interval,
                    max_missed_pongs=args.max_missed_pongs,
                )
            )
        except (ValueError, OSError) as error:
            print(f"bidistream endpoint: {error}", file=sys.stderr)
            return ExitCode.FAILED
        return ExitCode.OK
    return ExitCode.USAGE


if __name__ == "__main__":
    sys.exit(main())
