"""Structured logs: one JSON object per line on stdout (SageMaker ships stdout to CloudWatch Logs)."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

#: Set ``extra={FIELDS: {...}}`` on a log call to add those keys to the JSON line.
FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, the record's fields, the error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
            line["traceback"] = "".join(traceback.format_exception(error)).rstrip()
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: int) -> None:
    """Send every logger's records, ours and the libraries', to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would write a line for every /ping; keep it for debugging only.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
