"""One log line per event, as JSON (for log pipelines) or plain text (for people at a terminal)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

LOG_FORMATS = ("json", "text")


class JsonFormatter(logging.Formatter):
    """Formats a record and the ``extra`` fields given to it as one JSON object."""

    # uvicorn adds `color_message`, an ANSI-coloured copy of the message, for terminals.
    _standard = frozenset(vars(logging.makeLogRecord({}))) | {"color_message"}

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._time = ""

    def _formatted_time(self, created: float) -> str:
        """The record's local time to the second; formatted once per second, as lines come in bursts."""
        second = int(created)
        if second != self._second:
            self._time = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(second))
            self._second = second
        return self._time

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._formatted_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        standard = self._standard
        fields = vars(record)
        entry.update({k: fields[k] for k in fields if k not in standard})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(log_format: str = "json", level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format.

    Neither format shows the caller's file and line, thread or process, so the records do not collect
    them (logging's documented switches; about a third of the cost of a line).
    """
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
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
