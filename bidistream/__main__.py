"""The ``bidistream`` command line: invoke, endpoint, local, smoke."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bidistream.client import StreamTarget, Timeouts
from bidistream.errors import EXIT_CODE_TABLE, ExitCode
from bidistream.smoke import MODES


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
    endpoint.add_argument(
        "--ping-interval",
        type=_positive_seconds,
        default=60.0,
        help="seconds between keepalive pings to the container, > 0 (default 60, as SageMaker); "
        "pings cannot be turned off",
    )
    endpoint.add_argument(
        "--max-missed-pongs",
        type=_at_least_one,
        default=5,
        help="close the stream with 1011 after this many unanswered pings, >= 1 (default 5)",
    )
    invoke = commands.add_parser(
        "invoke",
        help="stream text lines (stdin or --text) or a WAV file to an endpoint and print the answers",
        description="Open a bidirectional stream with the real SDK. Text goes as UTF8 parts; --audio "
        'streams 16-bit PCM at real time as BINARY parts, then {"type":"CloseStream"}. On a TTY '
        "interim transcripts rewrite the line and finals end it; in a pipe only finals are printed.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes:\n{EXIT_CODE_TABLE}",
    )
    _target_options(invoke)
    source = invoke.add_mutually_exclusive_group()
    source.add_argument(
        "--text", action="append", help="a UTF8 part to send (repeatable); default: stdin lines"
    )
    source.add_argument("--audio", type=Path, help="a 16-bit PCM WAV file to stream at real time")
    invoke.add_argument(
        "--output",
        type=Path,
        help="text to speech (with --path v1/speak): send the text as Speak messages, then Close, and "
        "write the audio to this WAV file (format from --query encoding/sample_rate, Deepgram defaults)",
    )
    invoke.add_argument(
        "--timeout", type=float, default=30.0, help="bound on each wait, seconds (default 30)"
    )

    local = commands.add_parser(
        "local",
        help="run the container and a local endpoint, stream samples through the real SDK, stop both",
    )
    local.add_argument("--container-dir", type=Path, default=None, help="the model container's source dir")

    smoke = commands.add_parser(
        "smoke",
        help="the post-deploy smoke test, from a shell",
        description="Echo mode: a UTF8 and a BINARY part must come back unchanged. Transcribe mode: the "
        "bundled clip must produce a non-empty transcript (default --path v1/listen). Speak mode: a "
        "sentence sent as Speak + Flush must come back as Metadata and audio of plausible length before "
        "Flushed, measured in the --query encoding and sample_rate (default --path v1/speak). "
        "Exit 0 on pass, 1 on fail.",
    )
    _target_options(smoke)
    smoke.add_argument("--mode", choices=MODES, default="echo")
    smoke.add_argument("--budget", type=float, default=60.0, help="seconds the whole check may take")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint_name", metavar="ENDPOINT", help="the SageMaker endpoint name")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    parser.add_argument(
        "--endpoint-uri",
        help="default https://runtime.sagemaker.REGION.DNS_SUFFIX:8443, the suffix of the region's partition "
        "(amazonaws.com; amazonaws.com.cn in China)",
    )
    parser.add_argument("--ca-file", help="trust this CA (the local endpoint's ca.pem)")
    parser.add_argument("--path", help="ModelInvocationPath, e.g. v1/listen")
    parser.add_argument("--query", help="ModelQueryString, e.g. model=nova-3&language=en")
    parser.add_argument("--variant", help="TargetVariant")


def _target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> StreamTarget:
    if not args.region:
        parser.error("--region is required (or set AWS_REGION)")
    return StreamTarget(
        endpoint_name=args.endpoint_name,
        region=args.region,
        endpoint_uri=args.endpoint_uri,
        ca_file=args.ca_file,
        invocation_path=args.path,
        query_string=args.query,
        target_variant=args.variant,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
    try:
        if args.command == "invoke":
            from bidistream.invoke import InvokeInput, run_invoke

            if args.output is not None and args.audio is not None:
                parser.error("--output speaks text (--text or stdin); it cannot be used with --audio")

            limit = args.timeout
            return asyncio.run(
                run_invoke(
                    _target(args, parser),
                    Timeouts(open=limit, first_response=limit, idle=limit),
                    InvokeInput(texts=tuple(args.text or ()), audio=args.audio, output=args.output),
                    stdin=sys.stdin,
                    stdout=sys.stdout,
                    stderr=sys.stderr,
                    tty=sys.stdout.isatty(),
                )
            )
        if args.command == "smoke":
            return _smoke(args, parser)
        if args.command == "local":
            from bidistream.local import DEFAULT_CONTAINER_DIR, run_local

            return run_local(container_dir=args.container_dir or DEFAULT_CONTAINER_DIR)
    except KeyboardInterrupt:
        print("bidistream: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return ExitCode.USAGE


def _smoke(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ExitCode:
    from bidistream.smoke import SmokeTestFailed, run_smoke

    target = _target(args, parser)
    try:
        report = asyncio.run(
            run_smoke(
                target.endpoint_name,
                region=target.region,
                mode=args.mode,
                endpoint_uri=target.endpoint_uri,
                ca_file=target.ca_file,
                invocation_path=target.invocation_path,
                query_string=target.query_string,
                target_variant=target.target_variant,
                budget_seconds=args.budget,
            )
        )
    except SmokeTestFailed as failure:
        print(failure.report.summary(), file=sys.stderr)
        return ExitCode.FAILED
    print(report.summary())
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
