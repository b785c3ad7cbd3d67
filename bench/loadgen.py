"""The load generator, run as its own process: ``python -m bench.loadgen`` reads a JSON spec on stdin
and prints a JSON result.

Spec: ``host``, ``port``, ``ca`` (CA file for HTTPS, or null for HTTP), ``path``, ``bodies`` (files; request
``i`` sends body ``i mod n``), ``mode`` (``closed``: every connection sends back to back; ``open``: requests
start at a fixed ``rate`` per second whatever the answers do, latency counted from the scheduled start so
queueing is not hidden), ``connections``, ``duration`` (seconds) and ``max_requests`` (both bound the run),
``warmup`` (requests per connection before the clock starts).
"""

from __future__ import annotations

import functools
import json
import os
import queue
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.client import Connection, run_on_connections
from bench.stats import summary_ms

MAX_DURATION = 900.0
"""No spec may make a run longer than this (seconds)."""


class Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.bodies = [Path(p).read_bytes() for p in spec["bodies"]]
        self.context = ssl.create_default_context(cafile=spec["ca"]) if spec.get("ca") else None
        self.duration = min(float(spec["duration"]), MAX_DURATION)
        self.max_requests = int(spec.get("max_requests", 10_000_000))
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors: list[str] = []
        self.issued = 0

    def connection(self) -> Connection:
        return Connection(self.spec["host"], int(self.spec["port"]), self.context)

    def send(self, connection: Connection, index: int) -> bool:
        try:
            status, _ = connection.request("POST", self.spec["path"], self.bodies[index % len(self.bodies)])
        except Exception as error:  # recorded and counted; the connection is replaced
            connection.close()
            with self.lock:
                self.errors.append(repr(error))
            return False
        if status != 200:
            with self.lock:
                self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            return False
        return True

    def warm(self, connection: Connection) -> None:
        for index in range(int(self.spec.get("warmup", 5))):
            self.send(connection, index)

    def record(self, latency: float, ok: bool) -> None:
        with self.lock:
            if ok:
                self.latencies.append(latency)

    def closed(self) -> float:
        connections = [self.connection() for _ in range(int(self.spec["connections"]))]
        for connection in connections:
            self.warm(connection)
        deadline = time.perf_counter() + self.duration

        def worker(connection: Connection) -> None:
            while time.perf_counter() < deadline:
                with self.lock:
                    if self.issued >= self.max_requests:
                        return
                    index = self.issued
                    self.issued += 1
                start = time.perf_counter()
                ok = self.send(connection, index)
                self.record(time.perf_counter() - start, ok)

        return run_on_connections([functools.partial(worker, c) for c in connections], connections)

    def open(self) -> float:
        rate = float(self.spec["rate"])
        total = min(self.max_requests, int(rate * self.duration))
        connections = [self.connection() for _ in range(int(self.spec["connections"]))]
        for connection in connections:
            self.warm(connection)
        work: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()

        def worker(connection: Connection) -> None:
            while (item := work.get()) is not None:
                index, scheduled = item
                ok = self.send(connection, index)
                self.record(time.perf_counter() - scheduled, ok)

        threads = [threading.Thread(target=worker, args=(c,)) for c in connections]
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        for index in range(total):
            scheduled = start + index / rate
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            work.put((index, scheduled))
        self.issued = total
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
        for connection in connections:
            connection.close()
        return time.perf_counter() - start

    def result(self) -> dict[str, Any]:
        cpu_before = os.times()
        elapsed = self.open() if self.spec["mode"] == "open" else self.closed()
        cpu_after = os.times()
        cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        return {
            "ok": len(self.latencies),
            "issued": self.issued,
            "elapsed": elapsed,
            "throughput": len(self.latencies) / elapsed if elapsed else 0.0,
            "latency_ms": summary_ms(self.latencies),
            "non_200": self.statuses,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "client_cpu_share": cpu / elapsed if elapsed else 0.0,
        }


def main() -> None:
    spec = json.load(sys.stdin)
    json.dump(Run(spec).result(), sys.stdout)


if __name__ == "__main__":
    main()
