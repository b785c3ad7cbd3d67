"""Memory of each service process under sustained load: RSS after a warm-up, during and after a run
at a fixed rate (default 60 s at 200 requests/s each; ``--minutes 10`` for the full soak).

The webhook gets every body of the direct benchmark in turn over HTTPS, the hooks a typical ``/sync``
over HTTP, both at once from two load-generator processes. Growth is measured from the RSS after the
warm-up (the allocator and imports settle during the first thousands of requests).

``python -m bench.memory [--quick] [--minutes N]``
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bench import stats
from bench.bodies import all_bodies
from bench.common import Durations, load, progress, run_alone
from bench.hooks import typical_sync_body
from bench.procs import Server, make_tls, memory_mb

RATE = 200.0
WARMUP_SECONDS = 15.0


def _both(jobs: dict[str, tuple[Server, list[str], str]], duration: float) -> dict[str, dict[str, Any]]:
    """Open-loop load at RATE on every server at once, for ``duration`` seconds."""
    results: dict[str, dict[str, Any]] = {}

    def one(name: str, server: Server, bodies: list[str], path: str) -> None:
        results[name] = load(server, bodies, "open", path=path, connections=4, duration=duration, rate=RATE)

    threads = [threading.Thread(target=one, args=(name, *job)) for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    while any(thread.is_alive() for thread in threads):
        for name, (server, _, _) in jobs.items():
            samples[name].append(memory_mb(server.pid)["VmRSS"])
        time.sleep(1.0)
    for thread in threads:
        thread.join()
    for name, result in results.items():
        result["rss_samples"] = samples[name]
    return results


def run(durations: Durations, work_dir: Path) -> dict[str, Any]:
    tls = make_tls(work_dir)
    files = []
    for body in all_bodies():
        path = work_dir / f"{body.name}.json"
        path.write_bytes(body.payload)
        files.append(str(path))
    sync = work_dir / "sync.json"
    sync.write_bytes(typical_sync_body())
    with (
        Server("webhook", "webhook.app:app", work_dir, tls) as webhook,
        Server("hooks", "hooks.app:app", work_dir) as hooks,
    ):
        jobs = {"webhook": (webhook, files, "/mutate"), "hooks": (hooks, [str(sync)], "/sync")}
        started = {"webhook": memory_mb(webhook.pid)["VmRSS"], "hooks": memory_mb(hooks.pid)["VmRSS"]}
        warmup = min(WARMUP_SECONDS, durations.soak / 2)
        _both(jobs, warmup)
        before = {"webhook": memory_mb(webhook.pid)["VmRSS"], "hooks": memory_mb(hooks.pid)["VmRSS"]}
        progress(f"  soak: {durations.soak:.0f} s at {RATE:.0f}/s on each service")
        results = _both(jobs, durations.soak)
        out: dict[str, Any] = {"seconds": durations.soak, "rate": RATE, "services": {}}
        for name, server in (("webhook", webhook), ("hooks", hooks)):
            after = memory_mb(server.pid)
            result = results[name]
            out["services"][name] = {
                "started_mb": started[name],
                "before_mb": before[name],
                "after_mb": after["VmRSS"],
                "peak_mb": after["VmHWM"],
                "growth_pct": (after["VmRSS"] - before[name]) / before[name] * 100,
                "requests": result["ok"],
                "errors": result["errors"] + sum(result["non_200"].values()),
                "latency_ms": result["latency_ms"],
            }
    for name, service in out["services"].items():
        progress(
            f"  {name}: RSS {service['before_mb']:.1f} -> {service['after_mb']:.1f} MiB "
            f"({service['growth_pct']:+.1f}%), {service['requests']} requests, {service['errors']} errors"
        )
    return out


def report(result: dict[str, Any]) -> str:
    rows = []
    for name, s in result["services"].items():
        rows.append(
            [
                name,
                f"{s['started_mb']:.1f}",
                f"{s['before_mb']:.1f}",
                f"{s['after_mb']:.1f}",
                f"{s['peak_mb']:.1f}",
                f"{s['growth_pct']:+.2f}%",
                s["requests"],
                s["errors"],
                f"{s['latency_ms']['p50']:.2f} / {s['latency_ms']['p99']:.2f}",
            ]
        )
    headers = [
        f"service ({result['seconds']:.0f} s at {result['rate']:.0f}/s)",
        "RSS at start MiB",
        "after warm-up",
        "after run",
        "peak",
        "growth",
        "requests",
        "errors",
        "p50 / p99 ms",
    ]
    return stats.table(headers, rows)


def main() -> None:
    run_alone(__doc__, run, report, minutes=True)


if __name__ == "__main__":
    main()
