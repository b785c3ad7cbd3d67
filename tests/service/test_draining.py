"""SIGTERM drains: the server keeps serving for the shutdown delay, fails readiness, closes each connection
after its answer, and only then stops listening. Run as the image runs it, as a process."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

DELAY = 3.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, str | None, dict[str, str]]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.getheader("connection"), json.loads(response.read() or b"{}")


@pytest.fixture
def hooks() -> Iterator[tuple[subprocess.Popen[str], int]]:
    executable = shutil.which("kubeflow-extension")
    assert executable, "the console script is installed with the package"
    port = _free_port()
    argv = [executable, "serve", "hooks", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*argv, "--shutdown-delay", str(DELAY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the hooks did not start listening"
            time.sleep(0.1)
    try:
        yield process, port
    finally:
        process.kill()
        process.communicate(timeout=30)


def test_sigterm_keeps_serving_for_the_delay_with_readiness_failing_and_connections_closed(
    hooks: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = hooks
    kept_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert _get(kept_alive, "/readyz") == (200, None, {"status": "ready"})

    process.send_signal(signal.SIGTERM)
    sigterm = time.monotonic()
    time.sleep(0.5)  # the server notices on its next tick (0.1 s)

    # A connection kept alive from before still gets its answer, told to close afterwards.
    assert _get(kept_alive, "/healthz") == (200, "close", {"status": "ok"})
    # New connections are still accepted while the Service stops routing here; readiness fails.
    fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert _get(fresh, "/readyz") == (503, "close", {"status": "draining"})
    assert process.poll() is None, "stopped before the delay"

    process.wait(timeout=DELAY + 15)
    stopped = time.monotonic() - sigterm
    assert DELAY <= stopped < DELAY + 5, f"stopped {stopped:.1f} s after SIGTERM"
    assert process.returncode == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    logs = [json.loads(line) for line in process.communicate()[1].splitlines()]
    assert any(
        line["message"] == "draining before shutdown" and line.get("seconds") == DELAY for line in logs
    )


def test_a_second_sigterm_stops_without_waiting_out_the_delay(
    hooks: tuple[subprocess.Popen[str], int],
) -> None:
    process, _ = hooks
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    process.wait(timeout=DELAY + 15)
    assert time.monotonic() - started < DELAY - 1


def test_sigint_stops_at_once(hooks: tuple[subprocess.Popen[str], int]) -> None:
    process, _ = hooks
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=DELAY + 15)
    assert time.monotonic() - started < DELAY - 1
