"""The transcribe model's own variables: a bad ``TRANSCRIBE_*`` value stops the start exactly as a bad
server variable does (one line on stderr naming it, exit 2); good ones serve."""

from __future__ import annotations

import pytest

from tests.container.test_entrypoint import run_entry_point
from tests.support.processes import free_port, model_server


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("TRANSCRIBE_IDLE_TIMEOUT_SECONDS", "0", "a number of seconds > 0"),
        ("TRANSCRIBE_IDLE_TIMEOUT_SECONDS", "soon", "a number of seconds > 0"),
        ("TRANSCRIBE_WARM_DECODERS", "-1", "an integer >= 0"),
        ("TRANSCRIBE_WARM_DECODERS", "\N{SUPERSCRIPT ONE}", "an integer >= 0"),
        ("TRANSCRIBE_MAX_SESSIONS", "0", "an integer >= 1"),
        ("TRANSCRIBE_MAX_SESSIONS", "many", "an integer >= 1"),
    ],
)
def test_bad_transcribe_setting_stops_the_start_with_one_line_naming_it(
    name: str, value: str, allowed: str
) -> None:
    env = {name: value, "MODELS": "transcribe", "HOST": "127.0.0.1", "PORT": str(free_port())}
    result = run_entry_point("serve", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"model_server: {name}={value!r} is not valid: must be {allowed}"


def test_good_transcribe_settings_serve() -> None:
    # The twin: the same variables with good values load the model and answer /ping with 200.
    env = {
        "MODELS": "transcribe",
        "TRANSCRIBE_IDLE_TIMEOUT_SECONDS": "2.5",
        "TRANSCRIBE_WARM_DECODERS": "1",
        "TRANSCRIBE_MAX_SESSIONS": "4",
    }
    with model_server(env=env) as server:
        assert server.alive()
