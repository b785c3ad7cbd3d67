"""The webhook at another revision, the webhook of this tree and the ceiling, side by side over HTTPS.

Before/after figures measured in one run: the other revision's source is exported with ``git archive``
and served with this tree's virtual environment, each server started as ``bench.webhook_direct`` starts
them. For every body the three servers take turns (the order reversed each round) in closed loops; the
table gives each one's server CPU per review (its least over the rounds, the figure least disturbed by
other work on a shared machine) and throughput (median and best), and both webhooks' ratios to the
ceiling. Both ratios come from the same rounds, so a busy machine shifts them alike.

``python -m bench.revisions REV [--rounds N] [--seconds S]`` (default 4 rounds of 3 s per server and body)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import stats
from bench.bodies import all_bodies
from bench.common import progress
from bench.procs import REPO_ROOT, Server, make_tls
from bench.webhook_direct import alternating_closed_loops


def export(revision: str, into: Path) -> str:
    """``revision``'s tree written to ``into``; returns its short commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{revision}^{{commit}}"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(["git", "archive", commit], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def run(revision: str, rounds: int, seconds: float, work_dir: Path) -> dict[str, Any]:
    tree = work_dir / "baseline"
    tree.mkdir()
    commit = export(revision, tree)
    tls = make_tls(work_dir)
    servers = [
        Server("baseline", "webhook.app:app", work_dir, tls, root=tree),
        Server("webhook", "webhook.app:app", work_dir, tls),
        Server("ceiling", "bench.ceiling:app", work_dir, tls),
    ]
    rows = []
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        for body in all_bodies():
            body_file = work_dir / f"{body.name}.json"
            body_file.write_bytes(body.payload)
            closed = alternating_closed_loops(servers, str(body_file), rounds, seconds)
            cpu = {name: [r["cpu_ms_per_review"] for r in results] for name, results in closed.items()}
            throughput = {name: [r["throughput"] for r in results] for name, results in closed.items()}
            rows.append({"body": body.name, "kib": body.kib, "cpu": cpu, "throughput": throughput})
            progress(f"  {body.name:15} " + "  ".join(f"{n} {min(c):.3f} ms" for n, c in cpu.items()))
    return {"revision": revision, "commit": commit, "rounds": rounds, "seconds": seconds, "rows": rows}


def report(result: dict[str, Any]) -> str:
    headers = [
        "body",
        "KiB",
        "CPU ms/review: baseline / webhook / ceiling",
        "ratio to ceiling by CPU: baseline -> webhook",
        "reviews/s, median: baseline / webhook / ceiling",
        "ratio to ceiling by median reviews/s: baseline -> webhook",
    ]
    rows = []
    for row in result["rows"]:
        cpu = {name: min(values) for name, values in row["cpu"].items()}
        rate = {name: statistics.median(values) for name, values in row["throughput"].items()}
        rows.append(
            [
                row["body"],
                f"{row['kib']:.1f}",
                f"{cpu['baseline']:.3f} / {cpu['webhook']:.3f} / {cpu['ceiling']:.3f}",
                f"{cpu['ceiling'] / cpu['baseline']:.2f} -> {cpu['ceiling'] / cpu['webhook']:.2f}",
                f"{rate['baseline']:.0f} / {rate['webhook']:.0f} / {rate['ceiling']:.0f}",
                f"{rate['baseline'] / rate['ceiling']:.2f} -> {rate['webhook'] / rate['ceiling']:.2f}",
            ]
        )
    return stats.table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("revision", help="the revision to compare with (e.g. main, a commit id)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfext-bench-") as work:
        result = run(arguments.revision, arguments.rounds, arguments.seconds, Path(work))
    print(f"baseline: {result['revision']} ({result['commit']}); {result['rounds']} rounds of "
          f"{result['seconds']:g} s per server and body")  # fmt: skip
    print(report(result))


if __name__ == "__main__":
    main()
