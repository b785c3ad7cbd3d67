"""Metacontroller hooks: latency of a typical ``/sync`` (a profile namespace whose two Istio objects
already exist, as on every resync), in-process through the ASGI app and over HTTP to one uvicorn worker.

``python -m bench.hooks [--quick]``
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from bench import stats
from bench.common import Durations, progress, run_alone
from bench.procs import Server, memory_mb
from service import logs

NAMESPACE = "kubeflow-user-example-com"
Message = MutableMapping[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def typical_sync_body() -> bytes:
    """A resync: the Namespace, its Profile, and the attachments the hooks returned last time."""
    from hooks.app import create_app
    from service import config
    from tests.hooks.conftest import namespace, profile, shipped_controller, sync_request

    controller = shipped_controller()
    request = sync_request(controller, namespace(NAMESPACE), {NAMESPACE: profile(NAMESPACE)})
    first = asyncio.run(call(create_app(config.load()), orjson.dumps(request)))
    for attachment in orjson.loads(first[1])["attachments"]:
        key = f"{attachment['kind']}.{attachment['apiVersion']}"
        name = f"{attachment['metadata']['namespace']}/{attachment['metadata']['name']}"
        request["attachments"].setdefault(key, {})[name] = attachment
    return orjson.dumps(request)


async def call(app: App, body: bytes, path: str = "/sync") -> tuple[int, bytes]:
    """One POST through the ASGI app, as uvicorn would make it."""
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return int(status), b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def in_process(body: bytes, count: int) -> dict[str, float]:
    """Through ``hooks.app:app`` in this process, with its JSON log line written (to /dev/null)."""
    from hooks.app import app

    logs.configure("json")
    root = logging.getLogger()
    with open(os.devnull, "w") as sink:
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(sink)

        async def measure() -> list[float]:
            latencies = []
            for index in range(count + 200):
                start = time.perf_counter()
                status, _ = await call(app, body)
                if status != 200:
                    raise RuntimeError(f"/sync answered {status}")
                if index >= 200:
                    latencies.append(time.perf_counter() - start)
            return latencies

        latencies = asyncio.run(measure())
        root.handlers[:] = []
    return stats.summary_ms(latencies)


def over_http(body: bytes, count: int, work_dir: Path) -> dict[str, Any]:
    """Sequential requests on one keep-alive connection to ``hooks.app:app`` served by uvicorn."""
    with Server("hooks", "hooks.app:app", work_dir) as server:
        connection = server.connection()
        latencies = []
        for index in range(count + 200):
            start = time.perf_counter()
            status, _ = connection.request("POST", "/sync", body)
            if status != 200:
                raise RuntimeError(f"/sync answered {status}")
            if index >= 200:
                latencies.append(time.perf_counter() - start)
        connection.close()
        result: dict[str, Any] = stats.summary_ms(latencies)
        result["rss_mb"] = memory_mb(server.pid)["VmRSS"]
    return result


def run(durations: Durations, work_dir: Path) -> dict[str, Any]:
    body = typical_sync_body()
    count = 1000 if durations.rounds == 1 else 5000
    result: dict[str, Any] = {
        "body_bytes": len(body),
        "in_process": in_process(body, count),
        "http": over_http(body, count, work_dir),
    }
    progress(
        f"  hooks /sync p99: in-process {result['in_process']['p99']:.2f} ms, "
        f"HTTP {result['http']['p99']:.2f} ms"
    )
    return result


def report(result: dict[str, Any]) -> str:
    rows = [
        [name, f"{r['count']}", r["p50"], r["p99"], r["p999"], r["max"]]
        for name, r in (("in-process (ASGI)", result["in_process"]), ("HTTP, 1 worker", result["http"]))
    ]
    return stats.table(["/sync, typical resync", "requests", "p50 ms", "p99 ms", "p99.9 ms", "max ms"], rows)


def main() -> None:
    run_alone(__doc__, run, report)


if __name__ == "__main__":
    main()
