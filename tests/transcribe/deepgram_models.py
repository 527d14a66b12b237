"""Runs inside .venv-deepgram (deepgram-sdk installed), never in the test process.

``python deepgram_models.py connect-keywords`` prints the keywords of the SDK's ``listen.v1.connect``
as a JSON list. ``python deepgram_models.py validate`` reads one server message (JSON) per line from
stdin and prints one line per message: ``ok`` or the validation error. Validation is strict: the SDK's
own typed model for the message's ``type``, every nested model with extra fields forbidden and types
not coerced ("1" is no float), so a field the SDK does not know or a wrong type fails.

The SDK's generated models lack a few fields Deepgram's service really sends (its older SDK typed
them): ``Metadata.models``, ``Metadata.model_info``, ``Metadata.extra``, ``Metadata.tags`` and
``Results.metadata.extra``. Those, and only those, are allowed beyond the models, with their types.
"""

from __future__ import annotations

import inspect
import json
import sys
import typing

import pydantic
from deepgram.listen.v1.client import AsyncV1Client
from deepgram.listen.v1.types import (
    ListenV1ConfigureFailure,
    ListenV1ConfigureSuccess,
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Results": ListenV1Results,
    "Metadata": ListenV1Metadata,
    "SpeechStarted": ListenV1SpeechStarted,
    "UtteranceEnd": ListenV1UtteranceEnd,
    "ConfigureSuccess": ListenV1ConfigureSuccess,
    "ConfigureFailure": ListenV1ConfigureFailure,
    "Error": ListenV1Error,
}


class ModelInfo(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    name: str
    version: str
    arch: str


#: Fields Deepgram sends that the generated models leave out, per message type.
SERVICE_FIELDS: dict[str, dict[str, typing.Any]] = {
    "Metadata": {
        "models": (list[str] | None, None),
        "model_info": (dict[str, ModelInfo] | None, None),
        "extra": (dict[str, str] | None, None),
        "tags": (list[str] | None, None),
    },
    "ListenV1ResultsMetadata": {"extra": (dict[str, str] | None, None)},
}
_strict_cache: dict[type, type] = {}


def strict(model: type[pydantic.BaseModel], extra_fields: dict[str, typing.Any] | None = None) -> type:
    """A copy of ``model`` (and of every model it nests) that forbids unknown fields and coercion."""
    key = model
    if key in _strict_cache and extra_fields is None:
        return _strict_cache[key]
    fields: dict[str, typing.Any] = {}
    for name, info in model.model_fields.items():
        annotation = _strict_annotation(info.annotation)
        fields[name] = (annotation, info.default if not info.is_required() else ...)
    fields.update(SERVICE_FIELDS.get(model.__name__, {}))
    fields.update(extra_fields or {})
    copy = pydantic.create_model(  # type: ignore[call-overload]
        f"Strict{model.__name__}",
        __config__=pydantic.ConfigDict(extra="forbid", strict=True),
        **fields,
    )
    if extra_fields is None:
        _strict_cache[key] = copy
    return copy


def _strict_annotation(annotation: typing.Any) -> typing.Any:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return strict(annotation)
    if origin is None:
        return annotation
    args = tuple(_strict_annotation(arg) for arg in typing.get_args(annotation))
    if origin is typing.Union:
        return typing.Union[args]  # noqa: UP007 - rebuilt from parts
    if origin is typing.Literal:
        return annotation
    return origin[args] if len(args) > 1 else origin[args[0]]


def validate(line: str) -> str:
    message = json.loads(line)
    kind = message.get("type")
    if kind not in MODELS:
        return f"unknown message type {kind!r}"
    try:
        strict(MODELS[kind], SERVICE_FIELDS.get(kind)).model_validate(message)
    except pydantic.ValidationError as error:
        return f"{kind}: {error}".replace("\n", " | ")
    return "ok"


def main() -> None:
    if sys.argv[1:] == ["connect-keywords"]:
        names = set(inspect.signature(AsyncV1Client.connect).parameters) - {
            "self",
            "authorization",
            "request_options",
        }
        print(json.dumps(sorted(names)))
    elif sys.argv[1:] == ["validate"]:
        for line in sys.stdin:
            if line.strip():
                print(validate(line), flush=True)
    else:
        raise SystemExit("usage: deepgram_models.py connect-keywords | validate")


if __name__ == "__main__":
    main()
