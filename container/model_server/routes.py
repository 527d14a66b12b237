"""The route table: which model answers on which invocation path.

A client picks the path with ``ModelInvocationPath`` (e.g. ``v1/listen``); with none, SageMaker's
sidecar connects to ``/invocations-bidirectional-stream``, the default route, whose model also answers
``POST /invocations``. Models are named by import target so the server imports (and loads) only the
ones it serves, off the event loop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from model_server.model import Model
from model_server.settings import Settings, SettingsError

DEFAULT_PATH = "/invocations-bidirectional-stream"


@dataclass(frozen=True)
class Route:
    """One invocation path and the model class that serves it."""

    path: str
    model_name: str
    target: str  # "package.module:Class", a subclass of Model with a no-argument constructor


ROUTE_TABLE: tuple[Route, ...] = (
    Route(DEFAULT_PATH, "echo", "model_server.models.echo:EchoModel"),
    Route("/v1/listen", "transcribe", "model_server.models.transcribe:TranscribeModel"),
    Route("/v1/speak", "speak", "model_server.models.speak:SpeakModel"),
)


class ModelImportError(RuntimeError):
    """A route's model class could not be imported or is not a ``Model``."""


def enabled_routes(settings: Settings) -> tuple[Route, ...]:
    """The table filtered by ``MODELS``, then ``EXTRA_ROUTES``; a path may appear only once."""
    known = {route.model_name for route in ROUTE_TABLE}
    if settings.models is None:
        routes = list(ROUTE_TABLE)
    else:
        unknown = sorted(set(settings.models) - known)
        if unknown:
            raise SettingsError(
                f"MODELS={','.join(settings.models)!r} is not valid: unknown {', '.join(unknown)}; "
                f"known models are {', '.join(sorted(known))}"
            )
        routes = [route for route in ROUTE_TABLE if route.model_name in settings.models]
    routes += [Route(path, target.rpartition(":")[2], target) for path, target in settings.extra_routes]
    paths = [route.path for route in routes]
    duplicates = sorted({path for path in paths if paths.count(path) > 1})
    if duplicates:
        raise SettingsError(f"EXTRA_ROUTES is not valid: {', '.join(duplicates)} already has a model")
    return tuple(routes)


def create_model(route: Route) -> Model:
    """Import the route's model class and instantiate it (slow work belongs in ``Model.load``)."""
    module_name, _, class_name = route.target.partition(":")
    try:
        model_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ModelImportError(f"cannot import {route.target} for {route.path}: {error}") from error
    if not (isinstance(model_class, type) and issubclass(model_class, Model)):
        raise ModelImportError(f"{route.target} for {route.path} is not a model_server.model.Model")
    return model_class()
