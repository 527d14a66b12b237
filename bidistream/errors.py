"""Exit codes and one-line messages for every way a stream can fail.

Stdlib and SDK only: the smoke-test Lambda imports this module.
"""

from __future__ import annotations

from enum import IntEnum

from aws_sdk_sagemaker_runtime_http2.models import (  # type: ignore[import-untyped]
    InputValidationError,
    InternalServerError,
    InternalStreamFailure,
    ModelError,
    ModelStreamError,
    ServiceUnavailableError,
)
from smithy_aws_event_stream.exceptions import UnmodeledEventError
from smithy_core.exceptions import CallError, SmithyError


class ExitCode(IntEnum):
    """What ``bidistream`` exits with; shown in ``--help``."""

    OK = 0
    FAILED = 1  # a check failed (smoke test) or an unexpected error
    USAGE = 2  # bad command line (argparse's own code)
    NO_CREDENTIALS = 3
    INPUT_VALIDATION = 4  # 400 InputValidationError
    MODEL_ERROR = 5  # 424 ModelError: the container refused or could not take the WebSocket
    MODEL_STREAM_ERROR = 6  # the container closed the stream (close code in the message)
    INTERNAL_STREAM_FAILURE = 7
    SERVICE_UNAVAILABLE = 8  # 503 ServiceUnavailable or 500 InternalServerError
    TIMED_OUT = 9
    ACCESS_DENIED = 10  # 403: bad signature, unknown key, no permission
    CANNOT_CONNECT = 11  # nothing answers at the endpoint URI (or TLS failed)
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


EXIT_CODE_TABLE = "\n".join(f"  {code.value:>3}  {code.name.lower().replace('_', ' ')}" for code in ExitCode)


# The error types AWS answers a bad or unknown signature or a missing permission with.
ACCESS_DENIED_ERROR_TYPES = frozenset(
    {
        "AccessDeniedException",
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
    }
)


class StreamFailure(Exception):
    """A failure of the stream itself (not of the SDK call): timeouts, no credentials, no connection."""

    def __init__(self, exit_code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


class StreamTimeout(StreamFailure):
    """A bounded wait ran out: opening the stream, the first response, or an idle gap."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(ExitCode.TIMED_OUT, f"timed out after {seconds:g}s waiting for {phase}")
        self.phase = phase
        self.seconds = seconds


def describe(error: BaseException) -> tuple[ExitCode, str]:
    """The exit code and a one-line, human-readable description of ``error``."""
    match error:
        case StreamFailure():
            return error.exit_code, error.message
        case InputValidationError():
            return ExitCode.INPUT_VALIDATION, f"InputValidationError: {_text(error.message)}"
        case ModelError():
            details = [f"ModelError (424): {_text(error.message)}"]
            if error.original_status_code is not None:
                details.append(f"container answered {error.original_status_code}")
            if error.original_message:
                details.append(f"container said: {_text(error.original_message)}")
            if error.log_stream_arn:
                details.append(f"log stream: {error.log_stream_arn}")
            return ExitCode.MODEL_ERROR, "; ".join(details)
        case ModelStreamError():
            code = error.error_code or "?"
            return (
                ExitCode.MODEL_STREAM_ERROR,
                f"ModelStreamError (close code {code}): {_text(error.message)}",
            )
        case InternalStreamFailure():
            return ExitCode.INTERNAL_STREAM_FAILURE, f"InternalStreamFailure: {_text(error.message)}"
        case ServiceUnavailableError():
            return ExitCode.SERVICE_UNAVAILABLE, f"ServiceUnavailable (503): {_text(error.message)}"
        case InternalServerError():
            return ExitCode.SERVICE_UNAVAILABLE, f"InternalServerError (500): {_text(error.message)}"
        case UnmodeledEventError():
            if error.code in ACCESS_DENIED_ERROR_TYPES:
                return (
                    ExitCode.ACCESS_DENIED,
                    f"access denied mid-stream ({error.code}): {_text(error.message)}",
                )
            return ExitCode.INTERNAL_STREAM_FAILURE, f"stream error {error.code}: {_text(error.message)}"
        case CallError():
            status = error.response_metadata.http_status_code
            if status == 403:
                # The SDK models no 403; its message ends with the x-amzn-errortype it received.
                error_type = error.message.rpartition("#")[2] if "- id: " in error.message else "Forbidden"
                return ExitCode.ACCESS_DENIED, f"access denied (403 {error_type}): check the AWS credentials"
            if status is None:
                return ExitCode.CANNOT_CONNECT, f"cannot connect: {_text(error.message)}"
            return ExitCode.FAILED, f"HTTP {status}: {_text(error.message)}"
        case SmithyError():
            return _transport_error(error)
        case TimeoutError():
            return ExitCode.TIMED_OUT, "timed out"
        case OSError():
            return ExitCode.CANNOT_CONNECT, f"cannot connect: {error}"
    return ExitCode.FAILED, f"{type(error).__name__}: {_text(str(error))}"


def _transport_error(error: SmithyError) -> tuple[ExitCode, str]:
    # The SDK wraps transport failures (awscrt's AwsCrtError) in a bare SmithyError.
    cause = error.args[0] if error.args else error
    name = getattr(cause, "name", "")
    message = getattr(cause, "message", str(cause))
    if "TIMEOUT" in name:
        return ExitCode.TIMED_OUT, f"timed out: {name}: {message}"
    if name.startswith(("AWS_IO_SOCKET", "AWS_IO_DNS", "AWS_IO_TLS", "AWS_ERROR_HTTP_CONNECTION")):
        return ExitCode.CANNOT_CONNECT, f"cannot connect: {name}: {message}"
    return ExitCode.FAILED, f"{type(error).__name__}: {_text(f'{name}: {message}' if name else str(cause))}"


def _text(value: str | None) -> str:
    """One line, whatever the service or container put in a message."""
    return " ".join((value or "(no message)").split())
