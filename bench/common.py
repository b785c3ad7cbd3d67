"""What the benchmark modules share: running the load generator, durations for full and quick runs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import HOST, REPO_ROOT, Server


@dataclass(frozen=True)
class Durations:
    closed: float
    open: float
    rounds: int
    soak: float

    @classmethod
    def pick(cls, quick: bool, minutes: float | None = None) -> Durations:
        base = cls(closed=2.0, open=5.0, rounds=1, soak=20.0) if quick else cls(5.0, 10.0, 2, 60.0)
        if minutes is not None:
            return cls(base.closed, base.open, base.rounds, minutes * 60)
        return base


def load(server: Server, bodies: list[str], mode: str, **spec: Any) -> dict[str, Any]:
    """Run ``python -m bench.loadgen`` against ``server`` and return its result."""
    full = {
        "host": HOST,
        "port": server.port,
        "ca": str(server.tls.ca) if server.tls else None,
        "path": "/mutate",
        "bodies": bodies,
        "mode": mode,
        "connections": 8,
        "warmup": 5,
        **spec,
    }
    timeout = float(full["duration"]) * 3 + 60
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(full),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_alone(
    doc: str | None,
    run: Callable[[Durations, Path], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    summary: Callable[[dict[str, Any]], str] | None = None,
    minutes: bool = False,
) -> None:
    """The command line of one part (``python -m bench.<part> [--quick]``): run it, print its table."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    if minutes:
        parser.add_argument(
            "--minutes", type=float, help="length of the sustained run (default 1, quick 1/3)"
        )
    arguments = parser.parse_args()
    durations = Durations.pick(arguments.quick, getattr(arguments, "minutes", None))
    with tempfile.TemporaryDirectory(prefix="kfext-bench-") as work:
        result = run(durations, Path(work))
    print(report(result))
    if summary is not None:
        print(summary(result))
