"""The thin HTTP layer both services share: bounded JSON bodies, JSON errors, health and metrics routes.

Client mistakes raise ClientError anywhere below a route; one exception handler turns it into a 4xx
with a JSON body and a log line, so no route builds error responses by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.draining import THIS_PROCESS, Draining

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BODY_BYTES = 3 * 1024 * 1024
"""The kube-apiserver caps a request body at 3 MiB; nothing legitimate is larger."""


class ClientError(Exception):
    """The request cannot be answered as sent: becomes a 4xx with a JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(content: Any, status: int = 200) -> Response:
    """A JSON response encoded with orjson (sorted keys, so equal content is equal bytes)."""
    return Response(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), status, media_type="application/json")


def content_headers(request: Request) -> tuple[str, str | None]:
    """The Content-Type (empty if absent) and Content-Length (None if absent) headers, the first of each.

    One pass over the ASGI server's raw header list, whose names are lower-case: two look-ups through
    Starlette's ``request.headers`` cost three times as much, on every request.
    """
    content_type: str | None = None
    length: str | None = None
    for name, value in request.scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"content-length" and length is None:
            length = value.decode("latin-1")
    return content_type or "", length


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request body parsed as JSON; ClientError for a wrong type, an oversized or a malformed body."""
    content_type, declared = content_headers(request)
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ClientError(415, f"expected Content-Type application/json, got {content_type or 'none'!r}")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise ClientError(413, f"body of {declared} bytes exceeds the limit of {max_bytes}")
    # The chunks are joined once at the end: a body sent in one piece (the usual case) is then parsed
    # where the server put it, not copied into a growing buffer first.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise ClientError(413, f"body exceeds the limit of {max_bytes} bytes")
            chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as error:
        raise ClientError(400, f"body is not valid JSON: {error}") from None


async def read_request(request: Request, parse: Callable[[Any], T], rejected: Callable[[], None]) -> T:
    """The JSON body read by ``parse``; ``rejected`` runs (to count it) before a ClientError goes on to
    become a 4xx."""
    try:
        return parse(await read_json(request))
    except ClientError:
        rejected()
        raise


async def client_error_handler(request: Request, error: Exception) -> Response:
    """Answer a ClientError with its status and a JSON body, and log it once."""
    assert isinstance(error, ClientError)
    log.warning(
        "rejected request", extra={"path": request.url.path, "status": error.status, "reason": error.message}
    )
    return json_response({"error": error.message, "status": error.status}, error.status)


async def http_error_handler(request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 answers, as JSON like every other error."""
    assert isinstance(error, HTTPException)
    log.info(
        "no such route",
        extra={"path": request.url.path, "method": request.method, "status": error.status_code},
    )
    return json_response({"error": error.detail, "status": error.status_code}, error.status_code)


EXCEPTION_HANDLERS = {ClientError: client_error_handler, HTTPException: http_error_handler}
"""Every app registers these, so all of its errors are JSON with a log line."""


def probe_routes(registry: CollectorRegistry, draining: Draining = THIS_PROCESS) -> list[Route]:
    """``/healthz`` (the process answers), ``/readyz`` (it may take traffic) and ``/metrics``.

    Readiness fails once the process drains, so that the kubelet takes it out of its Service's endpoints
    even where the endpoint controller has not yet seen the Pod terminating; health does not, so that it
    is not restarted while it finishes.
    """

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if draining.started:
            return json_response({"status": "draining"}, 503)
        return json_response({"status": "ready"})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
