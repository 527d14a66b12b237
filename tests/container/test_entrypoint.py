"""The entry point and its settings: ``serve`` only, and a bad environment variable stops the start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from model_server.routes import DEFAULT_PATH, ROUTE_TABLE, enabled_routes
from model_server.settings import Settings, SettingsError
from tests.container.conftest import server_env
from tests.support.processes import CONTAINER_DIR, model_server


def run_entry_point(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_server", *args],
        cwd=CONTAINER_DIR,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("args", [[], ["train"], ["serve", "--port", "9"]])
def test_anything_but_serve_is_a_usage_error(args: list[str]) -> None:
    result = run_entry_point(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == "usage: python -m model_server serve"


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("MAX_SESSIONS", "lots", "an integer >= 1"),
        ("MAX_SESSIONS", "0", "an integer >= 1"),
        ("MAX_SESSIONS", "\u0661\u0660", "an integer >= 1"),  # Arabic-Indic "10": int() would take it
        ("MAX_MESSAGE_BYTES", "1.5", "an integer >= 1"),
        ("IDLE_TIMEOUT_SECONDS", "-1", "a number > 0"),
        ("DRAIN_GRACE_SECONDS", "nan", "a number >= 0"),
        ("PING_INTERVAL_SECONDS", "soon", "a number >= 0 (0 turns pings off)"),
        ("PORT", "70000", "an integer from 1 to 65535"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_bad_setting_stops_the_start_with_one_line_naming_it(name: str, value: str, allowed: str) -> None:
    result = run_entry_point("serve", env={name: value, "MODELS": "echo"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"model_server: {name}={value!r} is not valid: must be {allowed}"
    assert result.stdout == ""


def test_unknown_model_name_stops_the_start() -> None:
    result = run_entry_point("serve", env={"MODELS": "echo,wisper"})
    assert result.returncode == 2
    assert "unknown wisper; known models are echo, speak, transcribe" in result.stderr


def test_good_settings_start_the_server() -> None:
    # The twin of the tests above: the same variables with good values do start a server.
    env = server_env(
        MAX_SESSIONS="3",
        IDLE_TIMEOUT_SECONDS="12.5",
        DRAIN_GRACE_SECONDS="0",
        PING_INTERVAL_SECONDS="0",
        LOG_LEVEL="warning",
    )
    with model_server(env=env) as server:
        assert server.alive()


def test_settings_defaults_and_parsing() -> None:
    assert Settings.from_env({}) == Settings()
    settings = Settings.from_env(
        {
            "PORT": "9000",
            "MAX_MESSAGE_BYTES": "1024",
            "MODELS": " echo , transcribe ",
            "EXTRA_ROUTES": "v2/listen=team.models:Fast, /x=pkg:Y",
        }
    )
    assert settings.port == 9000
    assert settings.max_message_bytes == 1024
    assert settings.models == ("echo", "transcribe")
    assert settings.extra_routes == (("/v2/listen", "team.models:Fast"), ("/x", "pkg:Y"))


@pytest.mark.parametrize("value", ["v1/listen", "v1/listen=nomodule", "bad path=pkg:Cls", "/a=pkg:Cls:More"])
def test_malformed_extra_routes_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="EXTRA_ROUTES"):
        Settings.from_env({"EXTRA_ROUTES": value})


def test_models_selects_from_the_route_table() -> None:
    assert [route.model_name for route in enabled_routes(Settings.from_env({}))] == [
        "echo",
        "transcribe",
        "speak",
    ]
    only_echo = enabled_routes(Settings.from_env({"MODELS": "echo"}))
    assert [(route.path, route.model_name) for route in only_echo] == [(DEFAULT_PATH, "echo")]
    assert {route.path for route in ROUTE_TABLE} == {DEFAULT_PATH, "/v1/listen", "/v1/speak"}


def test_extra_route_cannot_take_a_path_that_has_a_model() -> None:
    with pytest.raises(SettingsError, match="already has a model"):
        enabled_routes(Settings.from_env({"MODELS": "echo", "EXTRA_ROUTES": f"{DEFAULT_PATH}=pkg:Other"}))


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_entry_point("serve", env={"MODELS": "echo", "HOST": "127.0.0.1", "PORT": str(port)})
    assert result.returncode == 1
    (failure,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert failure["event"] == "listen_failed"
    assert failure["message"].startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert failure["message"].endswith("address already in use")
