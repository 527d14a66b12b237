"""Every error the service defines maps to its own exit code and one line that says what happened."""

from __future__ import annotations

from aws_sdk_sagemaker_runtime_http2.models import (
    InputValidationError,
    InternalServerError,
    InternalStreamFailure,
    ModelError,
    ModelStreamError,
    ServiceUnavailableError,
)
from smithy_aws_event_stream.exceptions import UnmodeledEventError

from bidistream.errors import ExitCode, StreamTimeout, describe


def test_each_modeled_error_has_its_own_exit_code_and_a_single_line() -> None:
    errors = [
        (
            InputValidationError(message="bad\npath"),
            ExitCode.INPUT_VALIDATION,
            "InputValidationError: bad path",
        ),
        (
            ModelError(
                message="Failed to establish WebSocket connection",
                original_status_code=400,
                original_message="unknown parameter",
                log_stream_arn="arn:aws:logs:us-east-1:111122223333:log-group:/aws/sagemaker/Endpoints/e",
            ),
            ExitCode.MODEL_ERROR,
            "log stream: arn:aws:logs:us-east-1:111122223333:log-group:/aws/sagemaker/Endpoints/e",
        ),
        (
            ModelStreamError(message="bye", error_code="1011"),
            ExitCode.MODEL_STREAM_ERROR,
            "(close code 1011): bye",
        ),
        (
            InternalStreamFailure(message="try again"),
            ExitCode.INTERNAL_STREAM_FAILURE,
            "InternalStreamFailure",
        ),
        (ServiceUnavailableError(message="busy"), ExitCode.SERVICE_UNAVAILABLE, "ServiceUnavailable (503)"),
        (InternalServerError(message="oops"), ExitCode.SERVICE_UNAVAILABLE, "InternalServerError (500)"),
        (StreamTimeout("the first response", 5), ExitCode.TIMED_OUT, "5s waiting for the first response"),
        (UnmodeledEventError("InvalidSignatureException", "bad event"), ExitCode.ACCESS_DENIED, "mid-stream"),
    ]

    for error, code, fragment in errors:
        described_code, line = describe(error)
        assert (described_code, "\n" in line) == (code, False), line
        assert fragment in line, line


def test_an_unknown_error_is_a_plain_failure_not_a_crash() -> None:
    assert describe(RuntimeError("something else")) == (ExitCode.FAILED, "RuntimeError: something else")
