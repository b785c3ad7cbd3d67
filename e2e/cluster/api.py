"""kube-apiserver's REST API from the harness's load and watchers: a client certificate, one kept-alive
connection per thread (as a controller's client keeps them), no kubectl process per call."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from e2e.framework.pki import CertFiles


@dataclass
class Api:
    server: str
    """``https://host:port``."""
    ca: str
    client: CertFiles
    _local: threading.local = field(default_factory=threading.local)

    def _connection(self) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            context = ssl.create_default_context(cafile=self.ca)
            context.load_cert_chain(str(self.client.cert), str(self.client.key))
            host, port = self.server.removeprefix("https://").rsplit(":", 1)
            connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
            self._local.connection = connection
        return connection

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """The status and body of one request; a connection that failed is dropped and the error raised."""
        connection = self._connection()
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """The parsed answer of a request that must succeed (ValueError otherwise)."""
        status, answer = self.call(method, path, body)
        if status >= 300:
            raise ValueError(f"{method} {path}: {status} {answer[:200]!r}")
        return json.loads(answer)
