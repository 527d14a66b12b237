"""The AWS SDK for JavaScript v3 against the local endpoint: ``tests/e2e/js/bidi_client.js``, built
from the SDK's own pinned npm packages (SigV4 signer, NodeHttp2Handler, event-stream marshaller and
event signer), run by ``node`` trusting the endpoint's CA through ``NODE_EXTRA_CA_CERTS``.

Each failure message carries the exact request the client sent and its timeline."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ENDPOINT_NAME, REGION
from tests.support.processes import REPO_ROOT, RunningProcess

CLIENT = Path(__file__).with_name("js") / "bidi_client.js"
RUN_TIMEOUT = 60.0  # seconds for one client run (speech decoding shares 2 cores)
# What the JavaScript SDK signs over HTTP/2 for a request with a path and a query (clients.md).
SDK_SIGNED_HEADERS = (
    ":authority;amz-sdk-invocation-id;amz-sdk-request;content-type;x-amz-content-sha256;x-amz-date;"
    "x-amz-user-agent;x-amzn-sagemaker-model-invocation-path;x-amzn-sagemaker-model-query-string"
)
CLOSE_STREAM = '{"type":"CloseStream"}'


@dataclass
class JsRun:
    """What one run of the JavaScript client reported."""

    result: dict[str, Any]
    stderr: str

    @property
    def parts(self) -> list[tuple[bytes, str | None, str | None]]:
        return [
            (base64.b64decode(event["data"]), event["dataType"], event["completionState"])
            for event in self.result.get("events", [])
        ]

    @property
    def signed_headers(self) -> str:
        authorization = self.result["request"]["headers"]["authorization"]
        return str(authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0])

    def __str__(self) -> str:
        return (
            f"the JavaScript client sent {json.dumps(self.result.get('request'), indent=1)}\n"
            f"status {self.result.get('status')}, error {self.result.get('error')}, "
            f"stream error {self.result.get('streamError')}, failure {self.result.get('failure')}\n"
            f"timeline {self.result.get('timeline')}\nstderr: {self.stderr[-2000:]}"
        )


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"data": base64.b64encode(value.encode()).decode(), "dataType": "UTF8", **extra}


def binary(value: bytes, **extra: Any) -> dict[str, Any]:
    return {"data": base64.b64encode(value).decode(), "dataType": "BINARY", **extra}


def run_js(
    endpoint: RunningProcess,
    credentials: dict[str, str],
    parts: list[dict[str, Any]],
    *,
    end_input_after: int | None,
    path: str | None = None,
    query: str | None = None,
    secret: str | None = None,
) -> JsRun:
    node = shutil.which("node")
    assert node is not None, "node (v20) must be on PATH: the JavaScript SDK tests run it"
    assert (REPO_ROOT / "node_modules" / "@smithy" / "node-http-handler").is_dir(), "run make setup (npm ci)"
    script = {
        "endpoint": endpoint.extra["uri"],
        "region": REGION,
        "endpointName": ENDPOINT_NAME,
        "invocationPath": path,
        "queryString": query,
        "parts": parts,
        "endInputAfter": end_input_after,
    }
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "NODE_EXTRA_CA_CERTS": str(endpoint.extra["ca_file"]),
        "AWS_ACCESS_KEY_ID": credentials["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": secret or credentials["AWS_SECRET_ACCESS_KEY"],
    }
    completed = subprocess.run(
        [node, str(CLIENT)],
        input=json.dumps(script),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert completed.returncode == 0 and lines, (
        f"node exited {completed.returncode}: {completed.stdout}\n{completed.stderr}"
    )
    run = JsRun(json.loads(lines[-1]), completed.stderr)
    assert "failure" not in run.result, run
    return run


def test_text_binary_and_a_fragmented_message_echo_with_their_data_types(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    parts = [
        text("héllo ✓"),
        binary(bytes(range(256))),
        text("Generat", completionState="PARTIAL"),
        text("ing", completionState="PARTIAL"),
        text(" response", completionState="COMPLETE"),
    ]

    run = run_js(container_endpoint, credentials, parts, end_input_after=3)

    assert run.result["status"] == 200, run
    assert [(data, data_type) for data, data_type, _ in run.parts] == [
        ("héllo ✓".encode(), "UTF8"),
        (bytes(range(256)), "BINARY"),
        (b"Generating response", "UTF8"),  # the container got one message from the three fragments
    ], run
    request = run.result["request"]
    assert request["path"] == f"/endpoints/{ENDPOINT_NAME}/invocations-bidirectional-stream", run
    assert "host" not in request["headers"] and request["headers"][":authority"].startswith("127.0.0.1:"), run


def test_fragments_reach_the_container_as_fin_0_frames_and_come_back_partial(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    parts = [text("Generat", completionState="PARTIAL"), text("ing done", completionState="COMPLETE")]

    run = run_js(peer_endpoint, credentials, parts, end_input_after=5, path="fragments")

    report, *fragments = run.parts
    text_opcode, continuation = 1, 0
    assert json.loads(report[0]) == {"frames": [[text_opcode, False, 7], [continuation, True, 8]]}, run
    assert fragments == [
        (b"Gener", "UTF8", "PARTIAL"),  # the peer echoes the whole message in three fragments
        (b"ating", "UTF8", "PARTIAL"),
        (b" done", "UTF8", "PARTIAL"),
        (b"", "UTF8", "COMPLETE"),
    ], run


def test_v1_listen_returns_a_transcript(
    container_endpoint: RunningProcess, credentials: dict[str, str], tmp_path: Path
) -> None:
    # As the blog's client: the audio in 512,000-byte BINARY parts unpaced, then CloseStream as UTF8;
    # the input stays open until the model has closed the stream (the end of stream that hung the
    # Python SDK; NodeHttp2Handler destroys its session once the response has ended).
    with wave.open(str(REPO_ROOT / "bidistream" / "data" / "speech-sample.wav"), "rb") as clip:
        pcm = clip.readframes(clip.getnframes())
    audio = tmp_path / "speech.pcm"
    audio.write_bytes(pcm)
    parts = [{"file": str(audio), "chunkSize": 512_000, "dataType": "BINARY"}, text(CLOSE_STREAM)]

    run = run_js(
        container_endpoint,
        credentials,
        parts,
        end_input_after=None,
        path="v1/listen",
        query="encoding=linear16&sample_rate=16000",
    )

    messages = [json.loads(data) for data, data_type, _ in run.parts if data_type == "UTF8"]
    finals = [
        message["channel"]["alternatives"][0]["transcript"]
        for message in messages
        if message.get("type") == "Results" and message.get("is_final")
    ]
    assert " ".join(finals).strip(), (run, messages)
    assert run.result["streamError"] == {
        "name": "ModelStreamError",
        "message": run.result["streamError"]["message"],
        "errorCode": "1000",
    }, run
    assert run.signed_headers == SDK_SIGNED_HEADERS, run
    timeline = run.result["timeline"]
    assert timeline[-2:] == ["stream error ModelStreamError", "input ended"], run  # input open until then


def test_a_bad_invocation_path_is_a_424_model_error(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    run = run_js(container_endpoint, credentials, [text("hi")], end_input_after=1, path="no/such/model")

    assert run.result["status"] == 424, run
    assert run.result["error"]["type"] == "ModelError", run
    assert run.result["error"]["body"]["OriginalStatusCode"] == 404, run


def test_a_wrong_secret_is_refused_with_403_and_the_same_request_with_the_right_one_passes(
    container_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    def attempt(secret: str) -> JsRun:
        return run_js(container_endpoint, credentials, [text("hi")], end_input_after=1, secret=secret)

    refused = attempt("not-the-" + credentials["AWS_SECRET_ACCESS_KEY"])
    accepted = attempt(credentials["AWS_SECRET_ACCESS_KEY"])

    assert refused.result["status"] == 403, refused
    assert refused.result["error"]["type"] == "InvalidSignatureException", refused
    assert "does not match" in refused.result["error"]["body"]["message"], refused
    assert refused.signed_headers == accepted.signed_headers, (refused, accepted)
    assert accepted.result["status"] == 200 and accepted.parts == [(b"hi", "UTF8", "COMPLETE")], accepted


def test_the_handlers_goaway_after_the_headers_does_not_end_the_open_stream(
    peer_endpoint: RunningProcess, credentials: dict[str, str]
) -> None:
    log_line = "client sent GOAWAY; 1 open stream(s) continue"
    before = peer_endpoint.output().count(log_line)
    parts = [text("one"), text("two", afterResponses=1), binary(b"three", afterResponses=2)]

    run = run_js(peer_endpoint, credentials, parts, end_input_after=3)

    timeline = run.result["timeline"]
    goaway = timeline.index("session.close (GOAWAY)")
    assert timeline.index("response headers") <= goaway + 1, run  # right after the headers
    assert [index for index, what in enumerate(timeline) if what == "part sent"][1] > goaway, run
    assert [(data, data_type) for data, data_type, _ in run.parts] == [
        (b"one", "UTF8"),
        (b"two", "UTF8"),
        (b"three", "BINARY"),
    ], run
    assert peer_endpoint.output().count(log_line) > before, run
