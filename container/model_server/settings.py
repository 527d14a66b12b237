"""The server's settings, read once from environment variables and validated in one place.

Every variable has a default that suits a SageMaker endpoint; a bad value stops the process at start
with one line that names the variable, the value and what is allowed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MIB = 1024 * 1024
#: The exit code for a bad setting, the server's or a model's: the process could never have served.
EXIT_BAD_SETTING = 2


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot run with."""


@dataclass(frozen=True)
class Settings:
    """What the server reads from its environment (see ``from_env`` for names and defaults)."""

    host: str = "0.0.0.0"
    port: int = 8080
    max_sessions: int = 256
    max_message_bytes: int = 16 * MIB
    idle_timeout_seconds: float = 300.0
    drain_grace_seconds: float = 20.0
    ping_interval_seconds: float = 20.0
    close_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    models: tuple[str, ...] | None = None  # None: every model in the route table
    extra_routes: tuple[tuple[str, str], ...] = ()  # (path, "package.module:Class")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``env``; raise ``SettingsError`` naming the first bad variable.

        ``PORT`` and ``HOST`` place the listener; ``MAX_SESSIONS`` caps concurrent WebSocket sessions
        (more are closed with 1013); ``MAX_MESSAGE_BYTES`` caps one message, fragments included (1009);
        ``IDLE_TIMEOUT_SECONDS`` closes a session that sends nothing for that long (1008) unless its
        model sets its own, and aborts one whose client takes none of a message for that long;
        ``DRAIN_GRACE_SECONDS`` is how long open sessions may finish after SIGTERM before they get
        1001; ``PING_INTERVAL_SECONDS`` is the server's keepalive ping on a quiet session (0 turns it
        off); ``CLOSE_TIMEOUT_SECONDS`` bounds each closing handshake (past it the connection is
        aborted); ``LOG_LEVEL`` is DEBUG, INFO, WARNING or ERROR; ``MODELS`` names the models to serve,
        comma-separated (default: all); ``EXTRA_ROUTES`` mounts more models without code changes,
        as ``path=package.module:Class`` pairs, comma-separated.
        """
        defaults = cls()
        return cls(
            host=env.get("HOST", defaults.host).strip() or defaults.host,
            port=read_number(env, "PORT", defaults.port, int, 1, 65535, "an integer from 1 to 65535"),
            max_sessions=read_number(
                env, "MAX_SESSIONS", defaults.max_sessions, int, 1, None, "an integer >= 1"
            ),
            max_message_bytes=read_number(
                env, "MAX_MESSAGE_BYTES", defaults.max_message_bytes, int, 1, None, "an integer >= 1"
            ),
            idle_timeout_seconds=read_number(
                env, "IDLE_TIMEOUT_SECONDS", defaults.idle_timeout_seconds, float, 0.001, None, "a number > 0"
            ),
            drain_grace_seconds=read_number(
                env, "DRAIN_GRACE_SECONDS", defaults.drain_grace_seconds, float, 0.0, None, "a number >= 0"
            ),
            ping_interval_seconds=read_number(
                env,
                "PING_INTERVAL_SECONDS",
                defaults.ping_interval_seconds,
                float,
                0.0,
                None,
                "a number >= 0 (0 turns pings off)",
            ),
            close_timeout_seconds=read_number(
                env,
                "CLOSE_TIMEOUT_SECONDS",
                defaults.close_timeout_seconds,
                float,
                0.001,
                None,
                "a number > 0",
            ),
            log_level=_log_level(env.get("LOG_LEVEL", defaults.log_level)),
            models=_models(env.get("MODELS")),
            extra_routes=_extra_routes(env.get("EXTRA_ROUTES", "")),
        )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ROUTE_PATH = re.compile(r"^/[A-Za-z0-9\-._]+(?:/[A-Za-z0-9\-._]+)*$")  # what ModelInvocationPath allows
IMPORT_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def read_number[N: (int, float)](
    env: Mapping[str, str],
    name: str,
    default: N,
    kind: Callable[[str], N],
    low: N,
    high: N | None,
    allowed: str,
) -> N:
    """``env[name]`` as ``kind`` within ``low``..``high``; the default if unset or blank.

    Raises ``SettingsError`` with the one line the entry point prints: the variable, its value and
    ``allowed``. Models read their own variables with it too, so every bad value reads the same.
    """
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        # int() and float() also take non-ASCII digits (Arabic-Indic, full-width); settings are ASCII.
        if not raw.isascii():
            raise ValueError(raw)
        value = kind(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not valid: must be {allowed}") from None
    if value != value or value < low or (high is not None and value > high):  # value != value: NaN
        raise SettingsError(f"{name}={raw!r} is not valid: must be {allowed}")
    return value


def read_session_limits(
    env: Mapping[str, str], prefix: str, *, idle_timeout: float, max_sessions: int
) -> tuple[float, int]:
    """A model's ``<prefix>_IDLE_TIMEOUT_SECONDS`` and ``<prefix>_MAX_SESSIONS``, or the defaults given."""
    return (
        read_number(
            env, f"{prefix}_IDLE_TIMEOUT_SECONDS", idle_timeout, float, 0.001, None, "a number of seconds > 0"
        ),
        read_number(env, f"{prefix}_MAX_SESSIONS", max_sessions, int, 1, None, "an integer >= 1"),
    )


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={raw!r} is not valid: must be one of {', '.join(LOG_LEVELS)}")
    return level


def _models(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or raw.strip() == "":
        return None
    names = tuple(name.strip() for name in raw.split(","))
    if any(not name for name in names):
        raise SettingsError(f"MODELS={raw!r} is not valid: must be model names separated by commas")
    return names


def _extra_routes(raw: str) -> tuple[tuple[str, str], ...]:
    routes: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        path, _, target = item.partition("=")
        path = "/" + path.strip().lstrip("/")
        if not ROUTE_PATH.match(path) or not IMPORT_TARGET.match(target.strip()):
            raise SettingsError(
                f"EXTRA_ROUTES={raw!r} is not valid: each item must be path=package.module:Class, "
                f"got {item!r}"
            )
        routes.append((path, target.strip()))
    return tuple(routes)


def python_log_level(settings: Settings) -> int:
    """The ``logging`` level for ``settings.log_level``."""
    return int(logging.getLevelNamesMapping()[settings.log_level])
