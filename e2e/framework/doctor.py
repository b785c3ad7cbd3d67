"""``kubeflow-extension doctor`` run as its user runs it, against a kubeconfig: its exit status and
findings, read from its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from e2e.framework.versions import E2E_DIR


def run_report(kubeconfig: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Exit status and the whole JSON report (facts, findings, suppressed); RuntimeError (with its output)
    when it wrote no report."""
    command = ["-m", "kubeflow_extension", "doctor", "-o", "json", "--kubeconfig", str(kubeconfig), *args]
    result = subprocess.run(
        [sys.executable, *command],
        cwd=E2E_DIR.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        document: dict[str, Any] = json.loads(result.stdout)
        document["findings"]
    except (ValueError, KeyError):
        output = result.stdout[-1000:] + result.stderr[-2000:]
        raise RuntimeError(f"doctor exited {result.returncode} without a report: {output}") from None
    return result.returncode, document


def run(kubeconfig: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Exit status and findings."""
    status, document = run_report(kubeconfig, *args)
    return status, list(document["findings"])


Report = TypeVar("Report")


def until(report: Callable[[], Report], expected: Report, timeout: float) -> Report:
    """The first ``report()`` equal to ``expected`` within ``timeout`` seconds, else the last one: what
    doctor says once Metacontroller, the hooks or the EndpointSlices have caught up with a change."""
    deadline = time.monotonic() + timeout
    seen = report()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = report()
    return seen
