"""A minimal in-process ASGI client: one ``scope``/``receive``/``send`` round trip per request.

Much faster than a TestClient (no thread, no portal, no httpx), which is what lets the fuzz suite push
six figures of inputs through the real Starlette apps. An exception that escapes the app is returned in
``Answer.escaped`` rather than raised, so a property can report it with the input that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.logs import JsonFormatter

JSON = "application/json"


@dataclass
class Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    escaped: BaseException | None = None
    complete: bool = False
    """``more_body`` ended: the app finished its response."""

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def content_type(self) -> str:
        for name, value in self.headers:
            if name.lower() == b"content-type":
                return value.decode("latin-1")
        return ""


class Driver:
    """Calls one ASGI app on a private event loop; counts every request it sends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.sent = 0

    def close(self) -> None:
        self.loop.close()

    def post(
        self,
        path: str,
        body: bytes,
        content_type: str | None = JSON,
        *,
        chunks: int = 1,
        headers: Sequence[tuple[bytes, bytes]] | None = None,
    ) -> Answer:
        """POST ``body`` to ``path``; ``chunks`` > 1 delivers it in that many ``http.request`` messages.

        ``headers`` replaces the usual ones (host, content-length, content-type) entirely.
        """
        if headers is None:
            headers = [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
            if content_type is not None:
                headers.append((b"content-type", content_type.encode("utf-8", "surrogatepass")))
        self.sent += 1
        return self.loop.run_until_complete(self._call("POST", path, body, list(headers), chunks))

    async def _call(
        self, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]], chunks: int
    ) -> Answer:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        size = max(1, -(-len(body) // max(1, chunks)))
        parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        messages = [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
        answer = Answer()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)  # a real server would wait for the disconnect; never reached here
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                answer.complete = not message.get("more_body", False)

        try:
            await self.app(scope, receive, send)
        except BaseException as error:  # the property reports it; nothing must get here
            answer.escaped = error
        return answer


EXPECTED_ERRORS_SEEN: Counter[str] = Counter()
"""Errors logged with an expected message, by mutation and exception, for the summary."""


class LogSink(logging.Handler):
    """Formats every record the apps log, as the services would (JSON), and keeps the errors: a record
    at ERROR (an unexpected failure inside a mutation is one) or a record that fails to format."""

    def __init__(self, expected_errors: frozenset[str] = frozenset()) -> None:
        super().__init__(logging.INFO)
        self.expected_errors = expected_errors
        self.setFormatter(JsonFormatter())
        self.records = 0
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        line = self.format(record)
        if record.msg in self.expected_errors and record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            where = getattr(record, "mutation", record.name)
            EXPECTED_ERRORS_SEEN[f"{where}: {type(error).__name__}: {str(error)[:80]}"] += 1
        if (
            record.levelno >= logging.ERROR
            and record.msg not in self.expected_errors
            and len(self.errors) < 20
        ):
            self.errors.append(line[:2000])

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.errors.append(f"cannot format {record.msg!r}: {sys.exc_info()[1]!r}")


@contextmanager
def captured_logs(*names: str, expected_errors: frozenset[str] = frozenset()) -> Iterator[LogSink]:
    """Route the apps' loggers to a LogSink only: pytest would otherwise keep every one of the
    per-request lines of a six-figure run in memory. ``expected_errors``: messages judged elsewhere."""
    sink = LogSink(expected_errors)
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger, logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(sink)
    try:
        yield sink
    finally:
        for logger, level, propagate in saved:
            logger.setLevel(level)
            logger.propagate = propagate
            logger.removeHandler(sink)
