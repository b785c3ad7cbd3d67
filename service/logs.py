"""One log line per event, as JSON (for log pipelines) or plain text (for people at a terminal)."""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Mapping
from itertools import filterfalse
from typing import Any, ClassVar, TextIO, cast

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

    def _entry(self, created: float, level: str, name: str, message: str) -> dict[str, Any]:
        """The fields every line begins with, in this order; a record's or an event's own follow.

        The time is local, to the second, and formatted once per second, as lines come in bursts.
        """
        second = int(created)
        if second != self._second:
            self._time = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(second))
            self._second = second
        return {"time": self._time, "level": level, "logger": name, "message": message}

    def format(self, record: logging.LogRecord) -> str:
        entry = self._entry(record.created, record.levelname.lower(), record.name, record.getMessage())
        attributes = vars(record)
        if (
            isinstance(record, EventRecord)
            and len(attributes) == record.size
            and attributes.keys() >= record.fields.keys()
        ):
            # As many attributes as when it was made, its fields among them: nothing was added, so its
            # extra fields are the event's, their values read from the record (a filter may change
            # one). Scanning all ~30 names costs 8k instructions more.
            for key in record.fields:
                entry[key] = attributes[key]
        else:
            for key in filterfalse(self._standard.__contains__, attributes):
                entry[key] = attributes[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()

    def event_line(self, name: str, message: str, fields: Mapping[str, Any]) -> str:
        """The line ``format`` makes of an INFO event's record (``EventRecord``) made now, nothing added."""
        entry = self._entry(time.time(), "info", name, message)
        entry.update(fields)
        return orjson.dumps(entry, default=str).decode()


_STARTED = time.time()


class EventRecord(logging.LogRecord):
    """A record of an INFO event with its fields, made at a fraction of LogRecord's cost.

    For a line written on every request (the webhook's audit line): what LogRecord works out per record
    (the caller's file and line, thread, process, level name) is the same for every such event, so it is
    copied from one fixed map, and only the time, name, message and fields are set per record. Neither
    format shows the fixed attributes; the thread and process ones are None as ``configure`` makes every
    record's. Every attribute is in the record's own ``__dict__``, where %-style formats look.
    """

    _FIXED: ClassVar[dict[str, Any]] = dict.fromkeys(vars(logging.makeLogRecord({}))) | {
        "levelno": logging.INFO,
        "levelname": logging.getLevelName(logging.INFO),
        "args": (),
        "pathname": "(unknown file)",
        "filename": "(unknown file)",
        "module": "(unknown file)",
        "lineno": 0,
        "funcName": "(unknown function)",
    }

    __slots__ = ("fields", "size")
    """Kept out of ``__dict__``, so out of every format: the event's fields (their names), and how many
    attributes the record had when made, which tells the JSON format that nothing was added since."""

    def __init__(self, name: str, msg: str, fields: Mapping[str, Any]) -> None:
        # LogRecord's own __init__ is skipped on purpose: it would work out every fixed attribute again.
        created = time.time()
        attributes = self.__dict__
        attributes.update(self._FIXED)
        attributes.update(fields)
        self.name = name
        self.msg = msg
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - _STARTED) * 1000
        self.fields = fields
        self.size = len(attributes)


def info_event(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """``logger.info(message, extra=fields)`` for a line written per request, at a fraction of the cost.

    Where the record would reach only the JSON handler ``configure`` installs, with no filter on the way,
    the line is written to it directly (a fifth of the cost, measured with callgrind); anywhere else an
    EventRecord is handed to the logger's handlers (half the cost), so any other setup sees a record.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _sole_json_handler(logger)
    if handler is None:
        logger.handle(EventRecord(logger.name, message, fields))
    else:
        handler.write_event(logger.name, message, fields)


def _sole_json_handler(logger: logging.Logger) -> WriteThroughHandler | None:
    """The handler an INFO record of ``logger`` would reach alone, unfiltered, if it is configure's JSON one.

    Walks the loggers as ``Logger.callHandlers`` does: a few attribute reads, so a handler or filter
    added at any time (by a platform's logging setup, or a test) is seen on the next event.
    """
    if logger.filters:
        return None
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if (
        type(found) is WriteThroughHandler
        and not found.filters
        and found.level <= logging.INFO
        and type(found.formatter) is JsonFormatter
    ):
        return found
    return None


class WriteThroughHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler for a stream whose every write reaches the OS at once, as ``sys.stderr``'s does
    (a write-through text layer over an unbuffered file): the flush after each record would do nothing
    but take a tenth of the line's cost."""

    def flush(self) -> None:
        """Nothing is held back: ``emit`` wrote the record to the OS."""

    def write_event(self, name: str, message: str, fields: Mapping[str, Any]) -> None:
        """What ``emit`` does with an INFO event's record, without making the record: the same JSON line
        (``JsonFormatter.event_line``), written under the handler's lock, an error reported as emit's is."""
        try:
            # info_event checked the formatter's type; a check here would repeat it on every line.
            line = cast(JsonFormatter, self.formatter).event_line(name, message, fields) + self.terminator
            with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
                self.stream.write(line)
        except Exception:  # as emit: a log line that cannot be written must not fail the request
            self.handleError(EventRecord(name, message, fields))


def writes_through(stream: Any) -> bool:
    """Whether each write to the text ``stream`` goes straight to its file descriptor."""
    return (
        getattr(stream, "write_through", False) is True and type(getattr(stream, "buffer", None)) is io.FileIO
    )


def configure(log_format: str = "json", level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format.

    Neither format shows the caller's file and line, thread or process, so the records do not collect
    them (logging's documented switches; about a third of the cost of a line).
    """
    stream = sys.stderr
    handler = WriteThroughHandler(stream) if writes_through(stream) else logging.StreamHandler(stream)
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
