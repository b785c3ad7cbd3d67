"""A minimal HTTP/1.1 keep-alive client over a blocking (optionally TLS) socket.

Blocking ``ssl.SSLSocket`` I/O runs in C with the GIL released, so one load-generator process with a
few threads costs far less CPU per request than an asyncio or a full-featured client would; on a
2-core machine the load generator competes with the server for the same cores.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence


class HTTPError(RuntimeError):
    """The connection failed or the answer was not HTTP/1.1 as expected."""


class Connection:
    """One keep-alive connection; ``request`` sends one request and returns (status, body)."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.context, self.timeout = host, port, context, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host) if self.context else raw
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(262144)
        if not data:
            raise HTTPError("connection closed by the server")
        self.buffer += data

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _read_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: {content_type}\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        self.sock.sendall(head + body)
        return self._response()

    def _response(self) -> tuple[int, bytes]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HTTPError(f"not an HTTP/1.1 status line: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            raise HTTPError("response without Content-Length or chunked encoding")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1]), body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self._read_line().split(b";", 1)[0], 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                return b"".join(chunks)
            chunks.append(self._read_exact(size))
            self._read_line()


def run_on_connections(workers: Sequence[Callable[[], None]], connections: Sequence[Connection]) -> float:
    """Run each worker in its own thread, wait for all, close the connections; the seconds it took.

    A worker that raises fails the whole run once all have ended: a thread that died quietly would
    take its measurements with it, and the figures would come from fewer clients than reported.
    """
    errors: list[BaseException] = []

    def guarded(worker: Callable[[], None]) -> None:
        try:
            worker()
        except BaseException as error:  # re-raised below, in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(worker,)) for worker in workers]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for connection in connections:
        connection.close()
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(workers)} clients failed: {errors[0]}") from errors[0]
    return elapsed
