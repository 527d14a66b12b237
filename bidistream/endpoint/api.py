"""The runtime API's own rules: the operation's route, its input constraints, and its error shapes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Final

# From the Smithy model of AmazonSageMakerRuntimeHttp2 (InvokeEndpointWithBidirectionalStream).
ROUTE: Final = re.compile(r"^/endpoints/(?P<name>[^/?]+)/invocations-bidirectional-stream$")
ENDPOINT_NAME: Final = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
ENDPOINT_NAME_MAX: Final = 63
TARGET_VARIANT_MAX: Final = 63
INVOCATION_PATH: Final = re.compile(r"^[A-Za-z0-9\-._]+(?:/[A-Za-z0-9\-._]+)*$")
INVOCATION_PATH_MAX: Final = 100
QUERY_STRING: Final = re.compile(
    r"^[a-zA-Z0-9][A-Za-z0-9_-]*=(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})*"
    r"(?:&[a-zA-Z0-9][A-Za-z0-9_-]*=(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})*)*$"
)
QUERY_STRING_MAX: Final = 2048
DEFAULT_INVOCATION_PATH: Final = "invocations-bidirectional-stream"
DEFAULT_VARIANT: Final = "AllTraffic"

HEADER_VARIANT: Final = "x-amzn-sagemaker-target-variant"
HEADER_PATH: Final = "x-amzn-sagemaker-model-invocation-path"
HEADER_QUERY: Final = "x-amzn-sagemaker-model-query-string"
EVENT_STREAM_CONTENT_TYPE: Final = "application/vnd.amazon.eventstream"


@dataclass
class ApiError(Exception):
    """An error answered before the stream opens: status, ``x-amzn-errortype`` and the JSON body."""

    status: int
    error_type: str
    body: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.error_type}: {self.body}"

    def response(self, request_id: str) -> tuple[list[tuple[str, str]], bytes]:
        payload = json.dumps(self.body).encode()
        headers = [
            (":status", str(self.status)),
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
            ("x-amzn-errortype", self.error_type),
            ("x-amzn-requestid", request_id),
        ]
        return headers, payload


def input_validation_error(message: str) -> ApiError:
    return ApiError(400, "InputValidationError", {"Message": message, "ErrorCode": "ValidationError"})


def access_denied(error_type: str, message: str) -> ApiError:
    # AWS answers authentication failures with a lower-case "message", outside the service's model.
    return ApiError(403, error_type, {"message": message})


def model_error(message: str, *, original_status: int | None, original_message: str | None) -> ApiError:
    body: dict[str, object] = {"Message": message, "ErrorCode": "ModelError"}
    if original_status is not None:
        body["OriginalStatusCode"] = original_status
    if original_message:
        body["OriginalMessage"] = original_message
    return ApiError(424, "ModelError", body)


def internal_failure() -> ApiError:
    # The service's model names the 500 InternalServerError (the SDK raises it by that name); the
    # error code is the InternalFailure SageMaker reports.
    message = "The endpoint failed to process the request."
    return ApiError(500, "InternalServerError", {"Message": message, "ErrorCode": "InternalFailure"})


def not_found(path: str) -> ApiError:
    return ApiError(404, "UnknownOperationException", {"message": f"no operation at {path}"})


@dataclass(frozen=True)
class StreamRequest:
    """A validated InvokeEndpointWithBidirectionalStream request."""

    endpoint_name: str
    variant: str
    invocation_path: str
    query_string: str | None

    @property
    def container_resource(self) -> str:
        """``/<path>?<query>``: what the router asks the container's WebSocket server for."""
        query = f"?{self.query_string}" if self.query_string else ""
        return f"/{self.invocation_path}{query}"


def parse_request(method: str, path: str, headers: dict[str, str]) -> StreamRequest:
    """Validate route, method, content type and the API's parameters; raises ``ApiError``."""
    route = ROUTE.match(path.partition("?")[0])
    if route is None:
        raise not_found(path)
    if method != "POST":
        raise ApiError(405, "MethodNotAllowedException", {"message": f"{method} is not allowed here"})
    name = route["name"]
    if len(name) > ENDPOINT_NAME_MAX or not ENDPOINT_NAME.match(name):
        raise input_validation_error(
            f"EndpointName {name!r} must match {ENDPOINT_NAME.pattern}, at most {ENDPOINT_NAME_MAX} chars"
        )
    if headers.get("content-type") != EVENT_STREAM_CONTENT_TYPE:
        raise input_validation_error(f"Content-Type must be {EVENT_STREAM_CONTENT_TYPE}")
    invocation_path = headers.get(HEADER_PATH)
    if invocation_path is not None and (
        len(invocation_path) > INVOCATION_PATH_MAX or not INVOCATION_PATH.match(invocation_path)
    ):
        raise input_validation_error(
            f"ModelInvocationPath {invocation_path!r} must match {INVOCATION_PATH.pattern} "
            f"and be at most {INVOCATION_PATH_MAX} chars (no leading '/')"
        )
    query_string = headers.get(HEADER_QUERY)
    if query_string is not None and (
        len(query_string) > QUERY_STRING_MAX or not QUERY_STRING.match(query_string)
    ):
        raise input_validation_error(
            f"ModelQueryString {query_string!r} must be k=v pairs joined by '&' (keys [A-Za-z0-9_-], "
            f"values unreserved characters or %XX), at most {QUERY_STRING_MAX} chars"
        )
    variant = headers.get(HEADER_VARIANT) or DEFAULT_VARIANT
    if len(variant) > TARGET_VARIANT_MAX:
        raise input_validation_error(f"TargetVariant must be at most {TARGET_VARIANT_MAX} chars")
    return StreamRequest(
        endpoint_name=name,
        variant=variant,
        invocation_path=invocation_path or DEFAULT_INVOCATION_PATH,
        query_string=query_string or None,
    )
