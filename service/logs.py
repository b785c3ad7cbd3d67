"""One log line per event, as JSON (for log pipelines) or plain text (for people at a terminal)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

LOG_FORMATS = ("json", "text")


class JsonFormatter(logging.Formatter):
    """Formats a record and the ``extra`` fields given to it as one JSON object."""

    # uvicorn adds `color_message`, an ANSI-coloured copy of the message, for terminals.
    _standard = frozenset(vars(logging.makeLogRecord({}))) | {"color_message"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in self._standard)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(log_format: str = "json", level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
