"""A server TLS context that picks up a renewed certificate without a restart.

cert-manager rotates the Secret in place and the kubelet swaps the mounted files atomically. On every
new connection the files' identity (inode, size, mtime) is compared with what was loaded; after a
change a fresh context is built and, once certificate and key have loaded together, used for the
connections that follow. Open connections keep theirs. A half-rotated pair (new certificate, old key)
never replaces a working context: the next connection simply tries again.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int, int], ...]


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """TLS >= 1.2, no renegotiation, with the certificate chain and key loaded (or an exception)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(certfile, keyfile)
    return context


class ReloadingContext(ssl.SSLContext):
    """Hands each connection to the context loaded from the current files.

    It is an SSLContext so that uvicorn and asyncio accept it; asyncio creates every server-side TLS
    connection through ``wrap_bio``, which is where the files are checked.
    """

    certfile: str
    keyfile: str | None
    current: ssl.SSLContext
    _loaded: Signature

    def __new__(cls, certfile: str, keyfile: str | None = None) -> ReloadingContext:
        return super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)

    def __init__(self, certfile: str, keyfile: str | None = None) -> None:
        # ssl.SSLContext is set up in __new__; it has no __init__ of its own to call.
        self.certfile, self.keyfile = certfile, keyfile
        self.minimum_version = ssl.TLSVersion.TLSv1_2
        # The first load fails loudly: a webhook must not start without a usable certificate.
        self._loaded = self._signature()
        self.current = server_context(certfile, keyfile)

    def _signature(self) -> Signature:
        paths = [self.certfile, *([self.keyfile] if self.keyfile else [])]
        stats = [os.stat(path) for path in paths]
        return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def reload_if_changed(self) -> bool:
        """Switch to a context built from the files if they changed and load; True if it switched."""
        try:
            signature = self._signature()
            if signature == self._loaded:
                return False
            self.current = server_context(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as error:
            log.warning("certificate not reloaded, serving the previous one", extra={"reason": str(error)})
            return False
        self._loaded = signature
        log.info("certificate reloaded", extra={"certfile": self.certfile})
        return True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.reload_if_changed()
        return self.current.wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.reload_if_changed()
        return self.current.wrap_socket(*args, **kwargs)
