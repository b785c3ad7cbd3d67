"""The benchmark's check that Kyverno talks only to loopback, on this process's own sockets."""

from __future__ import annotations

import os
import socket

import pytest

from bench.procs import is_loopback_only, socket_addresses


def test_a_loopback_listener_and_connection_are_loopback_only() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()),
        server.accept()[0],
    ):
        seen = socket_addresses(os.getpid())
    assert ("tcp", "127.0.0.1", "0.0.0.0") in seen
    assert ("tcp", "127.0.0.1", "127.0.0.1") in seen
    assert all(is_loopback_only(local, remote) for _, local, remote in seen)


def test_a_listener_on_every_address_is_not_loopback_only() -> None:
    with socket.create_server(("0.0.0.0", 0)):
        seen = socket_addresses(os.getpid())
    assert ("tcp", "0.0.0.0", "0.0.0.0") in seen
    assert not is_loopback_only("0.0.0.0", "0.0.0.0")


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        ("::1", "::", True),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.5", True),
        ("127.0.0.1", "10.0.0.1", False),
        ("::", "::", False),
        ("::ffff:10.1.2.3", "::", False),
    ],
)
def test_loopback_only(local: str, remote: str, expected: bool) -> None:
    assert is_loopback_only(local, remote) is expected
