"""The benchmark's client threads: a client that fails must fail the run, not vanish with its figures."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.client import Connection, run_on_connections


def test_a_failing_client_fails_the_run_after_the_others_have_finished() -> None:
    finished: list[str] = []
    lock = threading.Lock()

    def healthy() -> None:
        with lock:
            finished.append("healthy")

    def failing() -> None:
        raise RuntimeError("create pod: 500")

    with socket.create_server(("127.0.0.1", 0)) as server:
        connections = [Connection("127.0.0.1", server.getsockname()[1]) for _ in range(2)]
        for connection in connections:
            connection.connect()
        with pytest.raises(RuntimeError, match=r"1 of 2 clients failed: create pod: 500"):
            run_on_connections([healthy, failing], connections)
    assert finished == ["healthy"]
    assert all(connection.sock is None for connection in connections), "connections closed all the same"


def test_clients_that_all_succeed_give_the_elapsed_time() -> None:
    assert run_on_connections([lambda: None, lambda: None], []) >= 0.0
