"""Run an ASGI app with uvicorn: HTTPS with certificate reloading, or plain HTTP where that is allowed."""

from __future__ import annotations

import logging
import signal
import socket
import ssl
from collections.abc import Callable
from types import FrameType

import uvicorn

from service import logs
from service.draining import THIS_PROCESS, Draining
from service.tls import ReloadingContext

log = logging.getLogger(__name__)

IDLE_CONNECTION_SECONDS = 120
"""How long an idle keep-alive connection stays open: longer than its clients keep one.

kube-apiserver (client-go's transport) and Metacontroller (Go's default transport) keep idle connections
for 90 s and send the next request on one without waiting. Were the server to close it first (uvicorn's
default is 5 s), a request sent as the close crosses it fails with EOF, and Go does not retry a POST:
an admission review failed that way refuses a trial Pod (failurePolicy Fail). Closing after the client
has let go removes the race; shutdown still closes idle connections at once.
"""


SHUTDOWN_DELAY_SECONDS = 10.0
"""How long a Pod told to stop keeps serving: the time its endpoint takes to leave every route to it.

The endpoint controller, then kube-proxy (``--iptables-min-sync-period`` 1 s by default) or
kube-apiserver's endpoint resolver, learn of the terminating Pod within a few seconds; Gatekeeper,
Kyverno and istiod wait 10 s for the same reason.
"""
GRACEFUL_TIMEOUT_SECONDS = 10
"""After the delay, how long requests still being answered may take before they are cancelled: a review
or a sync takes milliseconds; this bounds a stuck one. Delay plus this stays under the Deployments'
``terminationGracePeriodSeconds``."""
CLOSE_AFTER_ANSWER = (b"connection", b"close")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM drains before it stops.

    The kubelet sends SIGTERM while the Pod is still being taken out of its Service's endpoints; until
    kube-proxy and kube-apiserver have caught up, new and kept-alive connections still arrive. uvicorn alone
    would close its listener and idle connections at once, and kube-apiserver does not retry a failed
    admission call: trial Pods would be refused. So for ``shutdown_delay`` seconds it keeps listening, fails
    readiness and answers every request with ``Connection: close`` (the client's next connection takes the
    updated route); then it shuts down as uvicorn does, giving the requests in flight
    ``timeout_graceful_shutdown``.
    A second signal, or SIGINT, stops at once, as uvicorn does.
    """

    def __init__(
        self, config: uvicorn.Config, *, shutdown_delay: float, draining: Draining = THIS_PROCESS
    ) -> None:
        super().__init__(config)
        self.shutdown_delay = shutdown_delay
        self.draining = draining
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.shutdown_delay > 0 and not self.draining.started:
            self.draining.start()  # only a flag: this runs in a signal handler
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if await super().on_tick(counter):
            return True
        if not self.draining.started:
            return False
        if not self._announced:
            self._announced = True
            log.info("draining before shutdown", extra={"seconds": self.shutdown_delay})
        # uvicorn renews its default headers every second; keep the close among them.
        headers = self.server_state.default_headers
        if CLOSE_AFTER_ANSWER not in headers:
            self.server_state.default_headers = [*headers, CLOSE_AFTER_ANSWER]
        return self.draining.elapsed() >= self.shutdown_delay


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
    shutdown_delay: float = 0.0,
    graceful_timeout: int | None = GRACEFUL_TIMEOUT_SECONDS,
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
        timeout_graceful_shutdown=graceful_timeout,
    )
    return DrainingServer(config, shutdown_delay=shutdown_delay)


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
    shutdown_delay: float = 0.0,
    graceful_timeout: int | None = GRACEFUL_TIMEOUT_SECONDS,
) -> None:
    """Configure logging and serve ``app`` until SIGTERM (after draining ``shutdown_delay`` s) or SIGINT."""
    logs.configure(log_format)
    server = build_server(
        app,
        host,
        port,
        certfile=certfile,
        keyfile=keyfile,
        require_tls=require_tls,
        shutdown_delay=shutdown_delay,
        graceful_timeout=graceful_timeout,
    )
    server.run(sockets=sockets)
