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

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl
from e2e.framework.manifests import Document
from e2e.framework.versions import E2E_DIR

ROLE = "kubeflow-extension-doctor"


def role_for(kubectl: Kubectl, user: str) -> list[Document]:
    """doctor's ClusterRole from its kustomization (doctor/rbac/) and its binding to ``user``, to apply: a
    user with nothing else, so any write or any missing permission shows."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    return [*kubectl.kustomize(REPO_ROOT / "doctor" / "rbac"), binding]


def user_kubeconfig(plane: ControlPlane, user: str, path: Path) -> Path:
    """A kubeconfig of ``user`` (a client certificate of the plane's CA), readable by its owner only."""
    path.write_text(plane.client_kubeconfig(user))
    path.chmod(0o600)
    return path


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
