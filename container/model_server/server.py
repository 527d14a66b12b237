"""The HTTP and WebSocket server SageMaker's sidecar talks to, on one port.

``GET``/``POST /ping`` says whether every model is loaded and healthy; ``POST /invocations`` is one
request/response call to the default route's model; every route in the table is a WebSocket path. The
server owns the transport and its limits (session count, message size, idle time, keepalive pings,
drain on SIGTERM) and knows nothing about models beyond ``model_server.model``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal

from aiohttp import web

from model_server.logs import FIELDS
from model_server.model import CloseCode, InvocationError, Model, QueryError
from model_server.query import parse_query
from model_server.routes import DEFAULT_PATH, Route, create_model
from model_server.session import WebSocketSession
from model_server.settings import EXIT_BAD_SETTING, Settings, SettingsError

log = logging.getLogger("model_server.server")

#: Listen backlog: a burst of reconnecting clients must not find the queue full.
LISTEN_BACKLOG = 1024
#: The sidecar's request id, if it sends one on the upgrade; it goes into the session's log line.
REQUEST_ID_HEADER = "X-Amzn-SageMaker-Request-Id"


class State(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


class StreamingServer:
    """Serves the routes' models over HTTP and WebSocket, with limits and a graceful drain."""

    def __init__(self, settings: Settings, routes: tuple[Route, ...]) -> None:
        self._settings = settings
        self._routes = routes
        self._models: dict[str, Model] = {}
        self._state = State.LOADING
        self._sessions: set[WebSocketSession] = set()
        self._sessions_by_path: dict[str, int] = {}
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self._settings.max_message_bytes)
        app.router.add_route("GET", "/ping", self._ping)
        app.router.add_route("POST", "/ping", self._ping)
        app.router.add_route("POST", "/invocations", self._invoke)
        for route in self._routes:
            app.router.add_route("GET", route.path, partial(self._stream, route))
        return app

    async def load_models(self) -> None:
        """Import, create and load every route's model off the event loop; then ``/ping`` says ready."""
        loaded = await asyncio.gather(
            *(run_in_daemon_thread(partial(load_model, route)) for route in self._routes)
        )
        self._models = {route.path: model for route, model in zip(self._routes, loaded, strict=True)}
        if self._state is State.LOADING:
            self._state = State.READY
            log.info(
                "ready",
                extra={FIELDS: {"event": "ready", "routes": {r.path: r.model_name for r in self._routes}}},
            )

    def mark_failed(self) -> None:
        self._state = State.FAILED

    async def drain(self) -> None:
        """Refuse new sessions, let open ones finish within the grace period, then close them with 1001."""
        self._state = State.DRAINING
        grace = self._settings.drain_grace_seconds
        log.info(
            "draining", extra={FIELDS: {"event": "drain", "sessions": len(self._sessions), "grace_s": grace}}
        )
        try:
            await asyncio.wait_for(self._no_sessions.wait(), timeout=grace)
        except TimeoutError:
            remaining = list(self._sessions)
            await asyncio.gather(
                *(session.close(CloseCode.GOING_AWAY, "server is draining") for session in remaining),
                return_exceptions=True,
            )
            try:
                # Each close takes at most the close timeout, then aborts; on_end and the log come after.
                await asyncio.wait_for(
                    self._no_sessions.wait(), timeout=self._settings.close_timeout_seconds + 5
                )
            except TimeoutError:
                log.warning(
                    "sessions still open after drain",
                    extra={FIELDS: {"event": "drain", "sessions": len(self._sessions)}},
                )

    async def _ping(self, request: web.Request) -> web.Response:
        if self._state is State.READY and not all(model.healthy() for model in self._models.values()):
            return web.json_response({"status": "unhealthy"}, status=503)
        status = 200 if self._state is State.READY else 503
        return web.json_response({"status": str(self._state)}, status=status)

    async def _invoke(self, request: web.Request) -> web.Response:
        if self._state is not State.READY:
            return _error(503, f"server is {self._state}")
        model = self._models.get(DEFAULT_PATH)
        if model is None:
            return _error(404, f"no model serves the default route {DEFAULT_PATH} (see MODELS)")
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        try:
            result = await asyncio.to_thread(model.invoke, body, content_type)
        except InvocationError as error:
            return _error(error.status, error.message)
        except Exception:
            log.exception(
                "model failed in invoke", extra={FIELDS: {"event": "model_error", "path": "/invocations"}}
            )
            return _error(500, "internal error in the model")
        return web.Response(body=result.body, headers={"Content-Type": result.content_type})

    async def _stream(self, route: Route, request: web.Request) -> web.StreamResponse:
        if self._state is not State.READY:
            return _error(503, f"server is {self._state}")
        model = self._models[route.path]
        try:
            params = model.parse_query(parse_query(request.raw_path.partition("?")[2]))
        except QueryError as error:
            return _error(400, str(error))
        except Exception:
            log.exception(
                "model failed in parse_query", extra={FIELDS: {"event": "model_error", "path": route.path}}
            )
            return _error(500, "internal error in the model")
        settings = self._settings
        ws: web.WebSocketResponse[Literal[False]] = web.WebSocketResponse(
            timeout=settings.close_timeout_seconds,
            heartbeat=settings.ping_interval_seconds or None,
            compress=False,
            # aiohttp refuses a message of exactly max_msg_size bytes; MAX_MESSAGE_BYTES is the largest taken.
            max_msg_size=settings.max_message_bytes + 1,
            decode_text=False,
        )
        if not ws.can_prepare(request).ok:
            return _error(400, f"{route.path} is a WebSocket endpoint: send a WebSocket upgrade")
        await ws.prepare(request)
        session = WebSocketSession(
            ws,
            path=route.path,
            model_name=route.model_name,
            idle_timeout=model.idle_timeout or settings.idle_timeout_seconds,
            close_timeout=settings.close_timeout_seconds,
            transport=request.transport,
            request_id=request.headers.get(REQUEST_ID_HEADER),
        )
        if self._state is not State.READY:  # the drain began while the upgrade was written
            await _refuse(session, CloseCode.GOING_AWAY, "server is draining")
            return ws
        if len(self._sessions) >= settings.max_sessions:
            await _refuse(
                session, CloseCode.TRY_AGAIN_LATER, f"at the session limit ({settings.max_sessions})"
            )
            return ws
        if model.max_sessions is not None and self._sessions_by_path.get(route.path, 0) >= model.max_sessions:
            await _refuse(
                session,
                CloseCode.TRY_AGAIN_LATER,
                f"{route.path} is at its model's session limit ({model.max_sessions})",
            )
            return ws
        self._sessions.add(session)
        self._sessions_by_path[route.path] = self._sessions_by_path.get(route.path, 0) + 1
        self._no_sessions.clear()
        try:
            try:
                handler = model.open_session(session, params)
            except Exception:
                log.exception(
                    "model failed in open_session",
                    extra={
                        FIELDS: {"event": "model_error", "session_id": session.session_id, "path": route.path}
                    },
                )
                await _refuse(session, CloseCode.INTERNAL_ERROR, "internal error in the model")
                return ws
            await session.run(handler)
        finally:
            self._sessions.discard(session)
            self._sessions_by_path[route.path] -= 1
            if not self._sessions:
                self._no_sessions.set()
        return ws


def _error(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")


async def _refuse(session: WebSocketSession, code: CloseCode, reason: str) -> None:
    await session.close(code, reason)
    session.log_end()


def load_model(route: Route) -> Model:
    model = create_model(route)
    model.load()
    return model


def run_in_daemon_thread[T](work: Callable[[], T]) -> Awaitable[T]:
    """Run ``work`` in a daemon thread: a SIGTERM during a long load must not wait for it to finish."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = work()
        except BaseException as error:
            loop.call_soon_threadsafe(settle, None, error)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name="model-load", daemon=True).start()
    return future


async def serve(settings: Settings, routes: tuple[Route, ...]) -> int:
    """Listen, load the models, serve until SIGTERM or SIGINT, drain; return the exit code."""
    server = StreamingServer(settings, routes)
    runner = web.AppRunner(
        server.application(),
        handle_signals=False,
        # By cleanup the drain has ended every session; this bounds whatever is left (a request in
        # flight, a connection that will not close) instead of aiohttp's 60 s.
        shutdown_timeout=settings.close_timeout_seconds,
        access_log=logging.getLogger("aiohttp.access"),
        access_log_format='%a "%r" %s %b %Tfs',
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except OSError as error:
        log.error(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}",
            extra={FIELDS: {"event": "listen_failed", "host": settings.host, "port": settings.port}},
        )
        await runner.cleanup()
        return 1
    log.info(
        "listening",
        extra={
            FIELDS: {
                "event": "listening",
                "host": settings.host,
                "port": settings.port,
                "limits": _limits(settings),
            }
        },
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    exit_code = 0
    loading = asyncio.create_task(server.load_models())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    load_error = loading.exception() if loading.done() else None
    if load_error is not None:
        server.mark_failed()
        log.error(
            "model failed to load; exiting",
            exc_info=load_error,
            extra={FIELDS: {"event": "load_failed"}},
        )
        exit_code = 1
        if isinstance(load_error, SettingsError):
            # A model's own variable (e.g. TRANSCRIBE_*) is bad: the same one line and exit code as a
            # bad server variable, which the entry point reports before it listens.
            print(f"model_server: {load_error}", file=sys.stderr)
            exit_code = EXIT_BAD_SETTING
        stopping.cancel()
    else:
        await stopping
        if not loading.done():
            loading.cancel()
        await server.drain()
    await runner.cleanup()
    log.info("stopped", extra={FIELDS: {"event": "stopped", "exit_code": exit_code}})
    return exit_code


def _limits(settings: Settings) -> dict[str, object]:
    return {
        "max_sessions": settings.max_sessions,
        "max_message_bytes": settings.max_message_bytes,
        "idle_timeout_s": settings.idle_timeout_seconds,
        "drain_grace_s": settings.drain_grace_seconds,
        "ping_interval_s": settings.ping_interval_seconds,
        "close_timeout_s": settings.close_timeout_seconds,
    }
