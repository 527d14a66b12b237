"""Entry point: ``python -m model_server serve``, as SageMaker runs the image (``docker run IMAGE serve``)."""

from __future__ import annotations

import asyncio
import os
import sys

from model_server.logs import configure_logging
from model_server.routes import enabled_routes
from model_server.server import serve
from model_server.settings import EXIT_BAD_SETTING, Settings, SettingsError, python_log_level

USAGE = "usage: python -m model_server serve"
EXIT_USAGE = 2


def main(argv: list[str]) -> int:
    if argv != ["serve"]:
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings.from_env(os.environ)
        routes = enabled_routes(settings)
    except SettingsError as error:
        print(f"model_server: {error}", file=sys.stderr)
        return EXIT_BAD_SETTING
    configure_logging(python_log_level(settings))
    return asyncio.run(serve(settings, routes))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
