"""``bidistream local``: the container server and the local endpoint as child processes, a sample
streamed through the real SDK, answers printed, both shut down (also on Ctrl-C).

A throw-away credential pair is generated for the run and given to the endpoint (which checks
signatures against it) and to the client, through the environment. With the speech model present,
the bundled clip is streamed to ``v1/listen`` and the transcript is shown as it grows; without it,
only the echo sample runs. With the speak model present too, a sentence is spoken by ``v1/speak`` and
its audio streamed back to ``v1/listen``: a voice agent's mouth heard by its own ears.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Final, TextIO

from aws_sdk_sagemaker_runtime_http2.models import ModelError  # type: ignore[import-untyped]

from bidistream.client import Part, StreamTarget, Timeouts, open_stream
from bidistream.errors import ExitCode, describe
from bidistream.invoke import InvokeInput, run_invoke
from bidistream.speech import SpeechFormat, synthesize, write_wav

START_TIMEOUT: Final = 60.0  # seconds; the speech model loads in a few seconds
STOP_TIMEOUT: Final = 10.0
REGION: Final = "us-east-1"
ENDPOINT_NAME: Final = "bidistream-local"
DEFAULT_CONTAINER_DIR: Final = Path(__file__).resolve().parents[1] / "container"
SPEECH_QUERY: Final = "interim_results=true&encoding=linear16&sample_rate=16000"
#: What v1/listen decodes, so the spoken audio goes straight back to it.
SPEAK_QUERY: Final = "model=aura-2-thalia-en&encoding=linear16&sample_rate=16000"
LOOP_SENTENCE: Final = "Please call me back tomorrow morning."


class StartupFailed(Exception):
    """A child process did not become ready; the message carries what it printed."""


@dataclass
class Child:
    """A child process with its output in a file (for error messages)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def child(name: str, argv: list[str], *, cwd: Path, env: Mapping[str, str], workdir: Path) -> Iterator[Child]:
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=sink, stderr=sink
        )
    running = Child(name, process, log)
    try:
        yield running
    finally:
        running.stop()


def wait_for(ready: Child, condition: str, check: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    """Poll ``check()`` until true; fail with the child's output if it exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if ready.process.poll() is not None:
            raise StartupFailed(f"{ready.name} exited with {ready.process.returncode}:\n{ready.output()}")
        if time.monotonic() > deadline:
            raise StartupFailed(f"{ready.name}: no {condition} within {timeout:g}s:\n{ready.output()}")
        time.sleep(0.05)


def ping_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:  # noqa: S310 - loopback http
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def run_local(*, container_dir: Path = DEFAULT_CONTAINER_DIR, out: TextIO = sys.stdout) -> ExitCode:
    """Start both processes, stream the samples, stop both. Returns the exit code."""
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIDLOCAL" + secrets.token_hex(6).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env = {key: value for key, value in os.environ.items() if key != "AWS_SESSION_TOKEN"} | credentials
    model_port, endpoint_port = free_port(), free_port()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bidistream-local-")))
        try:
            print(f"starting the model container server on 127.0.0.1:{model_port} ...", file=out, flush=True)
            container = stack.enter_context(
                child(
                    "model-server",
                    [sys.executable, "-m", "model_server", "serve"],
                    cwd=container_dir,
                    env=env | {"PORT": str(model_port), "HOST": "127.0.0.1"},
                    workdir=workdir,
                )
            )
            model_url = f"http://127.0.0.1:{model_port}"
            wait_for(container, "GET /ping == 200", lambda: ping_ok(model_url))
            print(
                f"starting the local SageMaker endpoint on 127.0.0.1:{endpoint_port} ...",
                file=out,
                flush=True,
            )
            cert_dir = workdir / "certs"
            endpoint = stack.enter_context(
                child(
                    "local-endpoint",
                    [sys.executable, "-m", "bidistream", "endpoint", "--port", str(endpoint_port),
                     "--model-url", model_url, "--cert-dir", str(cert_dir)],
                    cwd=Path.cwd(),
                    env=env,
                    workdir=workdir,
                )
            )  # fmt: skip
            wait_for(endpoint, "ready line", lambda: "ready: " in endpoint.output())
        except StartupFailed as error:
            print(f"bidistream local: {error}", file=sys.stderr)
            return ExitCode.FAILED
        os.environ.update(credentials)  # the client finds them through the SDK's default chain
        os.environ.pop("AWS_SESSION_TOKEN", None)
        target = StreamTarget(
            endpoint_name=ENDPOINT_NAME,
            region=REGION,
            endpoint_uri=f"https://127.0.0.1:{endpoint_port}",
            ca_file=str(cert_dir / "ca.pem"),
        )
        return asyncio.run(_demo(target, out, workdir))
    return ExitCode.FAILED  # unreachable: the with block returns


async def _demo(target: StreamTarget, out: TextIO, workdir: Path) -> ExitCode:
    print(f"\n== echo through the real SDK: {target.uri}/endpoints/{target.endpoint_name}", file=out)
    code = await _echo_sample(target, out)
    if code is not ExitCode.OK:
        return code
    clip = resources.files("bidistream.data").joinpath("speech-sample.wav")
    if not clip.is_file():
        print("\n(no speech clip bundled: skipping the speech-to-text sample)", file=out)
        return ExitCode.OK
    print("\n== speech to text: the bundled clip, at real time, to v1/listen", file=out, flush=True)
    speech_target = StreamTarget(
        **{**target.__dict__, "invocation_path": "v1/listen", "query_string": SPEECH_QUERY}
    )

    skipped: list[bool] = []

    def skip_if_not_served(error: Exception) -> ExitCode | None:
        # Only a 404 from the container means "no speech model here"; any other refusal is a failure.
        if isinstance(error, ModelError) and error.original_status_code == HTTPStatus.NOT_FOUND:
            print("(the container serves no speech model on v1/listen: skipped)", file=out)
            skipped.append(True)
            return ExitCode.OK
        return None

    with resources.as_file(clip) as clip_path:
        code = await run_invoke(
            speech_target,
            Timeouts(),
            InvokeInput(audio=clip_path),
            stdin=sys.stdin,
            stdout=out,
            stderr=sys.stderr,
            tty=out.isatty(),
            claim_error=skip_if_not_served,
        )
    if code is not ExitCode.OK or skipped:
        return code
    return await _voice_loop(target, out, workdir)


async def _voice_loop(target: StreamTarget, out: TextIO, workdir: Path) -> ExitCode:
    """Speak a sentence with v1/speak, then stream that audio to v1/listen at real time."""
    print(f"\n== text to speech and back: {LOOP_SENTENCE!r} to v1/speak, its audio to v1/listen", file=out)
    speak_target = StreamTarget(
        **{**target.__dict__, "invocation_path": "v1/speak", "query_string": SPEAK_QUERY}
    )
    try:
        audio = await synthesize(speak_target, [LOOP_SENTENCE])
    except ModelError as error:
        if error.original_status_code == HTTPStatus.NOT_FOUND:
            print("(the container serves no speak model on v1/speak: skipped)", file=out)
            return ExitCode.OK
        return _report(error)
    except Exception as error:
        return _report(error)
    speech_format = SpeechFormat.from_query(SPEAK_QUERY)
    spoken = workdir / "spoken.wav"
    write_wav(spoken, audio, speech_format)
    print(
        f"  v1/speak answered {speech_format.describe(len(audio))}; heard by v1/listen:", file=out, flush=True
    )
    return await run_invoke(
        StreamTarget(**{**target.__dict__, "invocation_path": "v1/listen", "query_string": SPEECH_QUERY}),
        Timeouts(),
        InvokeInput(audio=spoken),
        stdin=sys.stdin,
        stdout=out,
        stderr=sys.stderr,
        tty=out.isatty(),
    )


def _report(error: Exception) -> ExitCode:
    code, message = describe(error)
    print(f"bidistream local: {message}", file=sys.stderr)
    return code


async def _echo_sample(target: StreamTarget, out: TextIO) -> ExitCode:
    samples = [
        Part.text("Hello from the bidistream client"),
        Part.binary(bytes(range(16))),
        Part.text("fragments: one ", completion_state="PARTIAL"),
        Part.text("message", completion_state="COMPLETE"),
    ]
    try:
        async with open_stream(target, Timeouts(open=15, first_response=15, idle=15)) as stream:
            for part in samples:
                await stream.send(part)
                print(f"  sent     {_show(part)}", file=out, flush=True)
            await stream.close_input()
            while (answer := await stream.receive()) is not None:
                print(f"  received {_show(answer)}", file=out, flush=True)
    except Exception as error:
        code, message = describe(error)
        print(f"bidistream local: {message}", file=sys.stderr)
        return code
    return ExitCode.OK


def _show(part: Part) -> str:
    body = part.data.decode(errors="replace") if part.is_text else part.data.hex(" ")
    return f"{part.data_type or 'BINARY':6} {part.completion_state or '-':8} {body!r}"
