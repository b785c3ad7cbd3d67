"""Records the identity headers of every request and answers ``{}``: where the ml-pipeline API would be.

Run inside a network namespace of its own (``python -m e2e.header_recorder PORT FILE``) so that it can
listen on ml-pipeline's fixed in-cluster port 8888 on that namespace's loopback. Each request is one JSON
line in FILE: method, path, Host, and the ``authorization`` and ``kubeflow-userid`` headers (null when
absent). An empty object is a valid answer to the list calls the kfp clients make.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

from e2e.stubs import JsonHandler

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring ``lo`` up, as ``ip link set lo up`` would: a new network namespace starts with it down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def serve(port: int, record: Path) -> None:
    class Recorder(JsonHandler):
        def do_GET(self) -> None:
            seen = {
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "authorization": self.headers.get("Authorization"),
                "kubeflow-userid": self.headers.get("kubeflow-userid"),
            }
            with record.open("a") as lines:
                lines.write(json.dumps(seen) + "\n")
            self.answer(200, {})

    with ThreadingHTTPServer(("127.0.0.1", port), Recorder) as server:
        record.touch()  # listening: the caller waits for the file
        server.serve_forever()


if __name__ == "__main__":
    loopback_up()
    serve(int(sys.argv[1]), Path(sys.argv[2]))
