"""Run an ASGI app with uvicorn: HTTPS with certificate reloading, or plain HTTP where that is allowed."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import uvicorn

from service import logs
from service.tls import ReloadingContext

IDLE_CONNECTION_SECONDS = 120
"""How long an idle keep-alive connection stays open: longer than its clients keep one.

kube-apiserver (client-go's transport) and Metacontroller (Go's default transport) keep idle connections
for 90 s and send the next request on one without waiting. Were the server to close it first (uvicorn's
default is 5 s), a request sent as the close crosses it fails with EOF, and Go does not retry a POST:
an admission review failed that way refuses a trial Pod (failurePolicy Fail). Closing after the client
has let go removes the race; shutdown still closes idle connections at once.
"""


class TLSRequiredError(ValueError):
    """The app must not be served without a certificate (the API server only calls webhooks over TLS)."""


def build_server(
    app: str,
    host: str,
    port: int,
    *,
    certfile: str | None,
    keyfile: str | None,
    require_tls: bool = False,
) -> uvicorn.Server:
    """The uvicorn server for ``app`` (``module:attribute``); HTTPS when a certificate is given."""
    if require_tls and not certfile:
        raise TLSRequiredError(f"{app} is served over HTTPS only: give a certificate and key")
    factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = None
    if certfile:
        cert = certfile

        def factory(_: uvicorn.Config, __: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            return ReloadingContext(cert, keyfile)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_context_factory=factory,
        log_config=None,  # service.logs has configured logging already
        access_log=False,  # the apps log what matters; probes would flood the log
        server_header=False,
        timeout_keep_alive=IDLE_CONNECTION_SECONDS,
        lifespan="off",
        loop="asyncio",  # its TLS connections are made with SSLContext.wrap_bio, where reloading hooks in
    )
    return uvicorn.Server(config)


def serve(
    app: str,
    host: str,
    port: int,
    *,
    certfile: str | None,
    keyfile: str | None,
    log_format: str,
    require_tls: bool = False,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Configure logging and serve ``app`` until SIGTERM/SIGINT (uvicorn handles both gracefully)."""
    logs.configure(log_format)
    build_server(app, host, port, certfile=certfile, keyfile=keyfile, require_tls=require_tls).run(
        sockets=sockets
    )
