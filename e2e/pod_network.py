"""Runs a command beside the ml-pipeline stand-in on ml-pipeline's in-cluster port, in a network namespace.

``python -m e2e.pod_network RECORD -- COMMAND...`` is meant to run inside ``unshare --net``: it brings the
namespace's loopback up, serves the stand-in on 127.0.0.1:8888 (the port kfp's in-cluster address names,
free in a namespace of its own), runs COMMAND, writes every request the stand-in saw to RECORD as JSON,
and exits with COMMAND's code.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

from e2e.ml_pipeline_standin import ml_pipeline_standin

ML_PIPELINE_PORT = 8888
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring ``lo`` up, as ``ip link set lo up`` would: a new network namespace starts with it down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def main(argv: list[str]) -> int:
    record, separator, *command = argv
    assert separator == "--", "usage: python -m e2e.pod_network RECORD -- COMMAND..."
    loopback_up()
    with ml_pipeline_standin(port=ML_PIPELINE_PORT) as standin:
        returncode = subprocess.run(command, check=False, timeout=600).returncode
        requests = [dataclasses.asdict(request) for request in standin.requests]
    Path(record).write_text(json.dumps(requests))
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
