"""Instructions per review, counted by valgrind's callgrind: a figure that does not depend on the load.

One process under ``valgrind --tool=callgrind`` calls ``webhook.app:app`` and the ceiling
(``bench.ceiling:app``) through ASGI in-process (no TLS, no HTTP parsing: those are the same for both),
with the webhook's JSON log line written to /dev/null. For each body and app: warm-up reviews, then
counters zeroed, ``REVIEWS`` reviews, counters dumped. The zero and the dump are triggered by entering the
interpreter's ``os.getppid`` and ``os.getpgrp``, which nothing else here calls, so the count covers
exactly the reviews (plus one such call). The hash seed is fixed so runs repeat.

``python -m bench.instructions`` (needs ``valgrind``; about a minute)
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.bodies import all_bodies
from bench.common import Durations
from bench.hooks import App, call
from bench.procs import REPO_ROOT

REVIEWS = 10
WARMUP = 5
ZERO, DUMP = "os_getppid", "os_getpgrp"
"""The C functions behind ``os.getppid`` and ``os.getpgrp`` in libpython."""
APPS = ("webhook", "ceiling")


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
                os.getppid()
                await reviews(apps[name], body, REVIEWS)
                os.getpgrp()

    asyncio.run(main())


_SUMMARY = re.compile(r"^summary: (\d+)", re.MULTILINE)


def run(durations: Durations, work_dir: Path) -> dict[str, Any]:
    """The counts are exact, so a quick run is the same run."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    out = work_dir / "callgrind.out"
    bodies = all_bodies()
    bodies_file = work_dir / "bodies.json"
    bodies_file.write_bytes(orjson.dumps([body.payload.decode() for body in bodies]))
    argv = [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        f"--zero-before={ZERO}",
        f"--dump-before={DUMP}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--inside",
        str(bodies_file),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFEXT_")} | {"PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-3000:]}")
    dumps = sorted(work_dir.glob("callgrind.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    counts = []
    for dump in dumps:
        match = _SUMMARY.search(dump.read_text())
        if match is None:
            raise RuntimeError(f"no instruction total in {dump}")
        counts.append(int(match[1]))
    if len(counts) != len(bodies) * len(APPS):
        raise RuntimeError(f"expected {len(bodies) * len(APPS)} dumps, got {len(counts)}")
    rows = []
    for index, body in enumerate(bodies):
        webhook, ceiling = counts[2 * index : 2 * index + 2]
        rows.append(
            {
                "body": body.name,
                "kib": body.kib,
                "webhook": webhook / REVIEWS,
                "ceiling": ceiling / REVIEWS,
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
        ]
        for r in result["rows"]
    ]
    headers = [
        "body",
        "KiB",
        "webhook k instr/review",
        "ceiling k instr/review",
        "webhook's own k instr",
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
