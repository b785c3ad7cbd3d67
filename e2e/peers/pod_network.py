"""Runs a command beside the ml-pipeline stand-in on ml-pipeline's in-cluster port, in a network namespace.

``python -m e2e.peers.pod_network RECORD -- COMMAND...`` is meant to run inside ``unshare --net``: it brings
the namespace's loopback up, serves the stand-in on 127.0.0.1:8888 (the port kfp's in-cluster address names,
free in a namespace of its own), runs COMMAND, writes every request the stand-in saw to RECORD as JSON,
and exits with COMMAND's code. ``STANDIN_FAULTS`` (JSON, route -> faults) plans faults; with
``STANDIN_TLS_CERT`` and ``STANDIN_TLS_KEY`` a second stand-in serves the Kubernetes API calls of a Kale
trial over HTTPS on 127.0.0.1:443, where an in-cluster client looks (its requests are recorded too,
``listener`` telling them apart).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from e2e.peers.ml_pipeline_standin import ml_pipeline_standin

ML_PIPELINE_PORT = 8888
KUBERNETES_PORT = 443
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring ``lo`` up, as ``ip link set lo up`` would: a new network namespace starts with it down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def main(argv: list[str]) -> int:
    record, separator, *command = argv
    assert separator == "--", "usage: python -m e2e.peers.pod_network RECORD -- COMMAND..."
    loopback_up()
    faults = json.loads(os.environ.get("STANDIN_FAULTS", "{}"))
    with ExitStack() as stack:
        listeners = {"ml-pipeline": stack.enter_context(ml_pipeline_standin(faults, port=ML_PIPELINE_PORT))}
        if os.environ.get("STANDIN_TLS_CERT"):
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(os.environ["STANDIN_TLS_CERT"], os.environ["STANDIN_TLS_KEY"])
            kubernetes = ml_pipeline_standin(port=KUBERNETES_PORT, tls=tls)
            listeners["kubernetes"] = stack.enter_context(kubernetes)
        returncode = subprocess.run(command, check=False, timeout=600).returncode
        requests = [
            {"listener": name, **dataclasses.asdict(request)}
            for name, standin in listeners.items()
            for request in standin.requests
        ]
    Path(record).write_text(json.dumps(requests))
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
