"""Instructions per review, counted by valgrind's callgrind: a figure that does not depend on the load.

Two counts for each body, webhook and ceiling (``bench.ceiling:app``):

- in-process: one process under ``valgrind --tool=callgrind`` calls both apps through ASGI (no TLS, no
  HTTP parsing), with the webhook's JSON log line written to /dev/null: the handler's own work;
- over HTTPS: each app served as ``bench.server`` serves it (uvicorn, TLS, the JSON log line to a file),
  the whole server under callgrind, sent reviews one after another on a keep-alive connection: what a
  review costs the server, the figure the throughput target's ratio is about, without the noise of
  timing on a shared machine. Kernel time (socket and pipe I/O, the same per review for both) is not
  counted, so the ratio is if anything lower than one by CPU time.

For each body and app: warm-up reviews, then counters zeroed, ``REVIEWS`` reviews, counters dumped. The
zero and the dump are triggered by entering the interpreter's ``os.getppid`` and ``os.getpgrp``, which
nothing else here calls: in-process between the reviews, over HTTPS by two marking requests
(``bench.marked``), whose own handling is counted in a stretch with no review and taken off. The hash
seed is fixed so runs repeat.

``python -m bench.instructions`` (needs ``valgrind``; a few minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import stats
from bench.bodies import Body, all_bodies
from bench.client import Connection
from bench.common import Durations
from bench.hooks import App, call
from bench.procs import REPO_ROOT, Server, default_environment, make_tls

REVIEWS = 50
"""Counted per body and app: with 10, the count over HTTPS moved by up to 6k instructions per review
between runs of the same code."""
WARMUP = 5
ZERO, DUMP = "os_getppid", "os_getpgrp"
"""The C functions behind ``os.getppid`` and ``os.getpgrp`` in libpython."""
APPS = ("webhook", "ceiling")
dump_counters = os.getpgrp
"""Called by the counted process: entering DUMP dumps callgrind's counters."""


def zero_counters() -> None:
    """Called by the counted process: a full garbage collection, then entering ZERO zeroes the counters.

    The collection puts every stretch at the same start, with nothing left over from the ones before:
    the collections inside a stretch are then its own. Without it a full collection (about 270k
    instructions with the 100 KiB body) fell in one app's stretch or the other's by the history."""
    gc.collect()
    os.getppid()


def _inside(bodies_file: Path) -> None:
    """Runs under callgrind: the reviews, each measured stretch between the two markers. The bodies are
    built outside (building the 100 KiB one is slow under valgrind)."""
    from bench.ceiling import app as ceiling
    from service import logs
    from webhook.app import app as webhook

    logs.configure("json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    apps: dict[str, App] = {"webhook": webhook, "ceiling": ceiling}

    async def reviews(app: App, body: bytes, count: int) -> None:
        for _ in range(count):
            status, answer = await call(app, body, "/mutate")
            if status != 200:
                raise RuntimeError(f"{status} {answer[:200]!r}")

    async def main() -> None:
        for text in orjson.loads(bodies_file.read_bytes()):
            body = text.encode()
            for name in APPS:
                await reviews(apps[name], body, WARMUP)
                zero_counters()
                await reviews(apps[name], body, REVIEWS)
                dump_counters()

    asyncio.run(main())


_SUMMARY = re.compile(r"^summary: (\d+)", re.MULTILINE)


def _callgrind(valgrind: str, out: Path) -> list[str]:
    """The command a counted process runs under: its stretches dumped to ``out.1``, ``out.2``, …"""
    return [
        "env",
        "PYTHONHASHSEED=0",
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        f"--zero-before={ZERO}",
        f"--dump-before={DUMP}",
    ]


def _totals(out: Path, expected: int) -> list[int]:
    """The instruction totals of the dumps next to ``out``, in the order they were made."""
    dumps = sorted(out.parent.glob(f"{out.name}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    counts = []
    for dump in dumps:
        match = _SUMMARY.search(dump.read_text())
        if match is None:
            raise RuntimeError(f"no instruction total in {dump}")
        counts.append(int(match[1]))
    if len(counts) != expected:
        raise RuntimeError(f"expected {expected} dumps of {out}, got {len(counts)}")
    return counts


def in_process(valgrind: str, bodies: list[Body], work_dir: Path) -> list[int]:
    """Totals in the order body by body, app by app (APPS)."""
    out = work_dir / "callgrind.out"
    bodies_file = work_dir / "bodies.json"
    bodies_file.write_bytes(orjson.dumps([body.payload.decode() for body in bodies]))
    argv = [
        *_callgrind(valgrind, out),
        sys.executable,
        "-m",
        "bench.instructions",
        "--inside",
        str(bodies_file),
    ]
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=default_environment(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-3000:]}")
    return _totals(out, len(bodies) * len(APPS))


def _send_reviews(server: str, connection: Connection, body: Body, count: int) -> None:
    for _ in range(count):
        status, answer = connection.request("POST", "/mutate", body.payload)
        if status != 200:
            raise RuntimeError(f"{server}: {status} {answer[:200]!r}")


def over_https(valgrind: str, bodies: list[Body], work_dir: Path) -> dict[str, list[int]]:
    """Totals per app, body by body: each app served under callgrind, reviews sent one at a time.

    The two marking requests' own handling (sending the first's answer, reading the second) costs
    about as much as a review's TLS and HTTP: it is counted in a stretch with no review in it and
    taken off, so the totals are the reviews' alone."""
    tls = make_tls(work_dir)
    totals = {}
    for name in APPS:
        out = work_dir / f"https-{name}.out"
        server = Server(name, f"bench.marked:{name}", work_dir, tls, launcher=_callgrind(valgrind, out))
        server.start(timeout=600)  # Python's start-up under valgrind takes a while
        try:
            connection = server.connection()
            for body in bodies:
                _send_reviews(name, connection, body, WARMUP)
                for count in (REVIEWS, 0):
                    connection.request("GET", "/zero")
                    _send_reviews(name, connection, body, count)
                    connection.request("GET", "/dump")
            connection.close()
        finally:
            server.stop()
        counts = _totals(out, 2 * len(bodies))
        totals[name] = [stretch - marks for stretch, marks in zip(counts[::2], counts[1::2], strict=True)]
    return totals


def run(durations: Durations, work_dir: Path) -> dict[str, Any]:
    """The counts do not depend on the load, so a quick run is the same run."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    bodies = all_bodies()
    local = in_process(valgrind, bodies, work_dir)
    served = over_https(valgrind, bodies, work_dir)
    rows = []
    for index, body in enumerate(bodies):
        webhook, ceiling = local[2 * index : 2 * index + 2]
        rows.append(
            {
                "body": body.name,
                "kib": body.kib,
                "patched": body.expect_patch,
                "webhook": webhook / REVIEWS,
                "ceiling": ceiling / REVIEWS,
                "https_webhook": served["webhook"][index] / REVIEWS,
                "https_ceiling": served["ceiling"][index] / REVIEWS,
            }
        )
    return {"rows": rows, "reviews": REVIEWS}


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            r["body"],
            f"{r['kib']:.1f}",
            f"{r['webhook'] / 1000:,.0f}",
            f"{r['ceiling'] / 1000:,.0f}",
            f"{(r['webhook'] - r['ceiling']) / 1000:,.0f}",
            f"{r['ceiling'] / r['webhook']:.2f}",
            f"{r['https_webhook'] / 1000:,.0f}",
            f"{r['https_ceiling'] / 1000:,.0f}",
            f"{r['https_ceiling'] / r['https_webhook']:.4f}",
        ]
        for r in result["rows"]
    ]
    headers = [
        "body",
        "KiB",
        "in-process: webhook k instr/review",
        "ceiling",
        "webhook's own",
        "ceiling / webhook",
        "HTTPS server: webhook k instr/review",
        "ceiling",
        "ceiling / webhook",
    ]
    return stats.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.inside:
        _inside(arguments.inside)
        return
    with tempfile.TemporaryDirectory(prefix="kfext-bench-") as work:
        print(report(run(Durations.pick(quick=True), Path(work))))


if __name__ == "__main__":
    main()
