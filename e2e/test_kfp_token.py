"""The SDK path of token identity: the real kfp clients (1.8.22 and 2.16.0 from PyPI, in the Kale
environments) in a Pod-like environment send the mounted token as ``Authorization: Bearer`` to ml-pipeline.

kfp (1.8.22 ``_client.py`` and 2.x ``client/client.py`` ``_load_config``) adds the token only in-cluster:
``kfp.Client()`` without a host, ``kubernetes.config.load_incluster_config()`` succeeding, then host
``ml-pipeline.kubeflow.svc.cluster.local:8888`` and the credentials that read ``KF_PIPELINES_SA_TOKEN_PATH``
before every request. So each client runs in a mount and network namespace of its own that looks like a
Pod: the in-cluster service account files, ``KUBERNETES_SERVICE_HOST``, ml-pipeline's name resolved to that
namespace's loopback, where the ml-pipeline stand-in listens on port 8888. Nothing leaves the namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from e2e.controlplane import REPO_ROOT
from e2e.kale_peers import kale_python

pytestmark = pytest.mark.e2e

ML_PIPELINE = "ml-pipeline.kubeflow.svc.cluster.local"
KUBE_API_TOKEN = "the-default-service-account-token-not-for-kfp"
CLIENTS = {"kfp 1.8.22": "0.7.0", "kfp 2.16.0": "2.3.0"}
"""Each kfp client, by the Kale release whose environment holds it (e2e/kale_peers.py)."""

POD_SHELL = """
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
printf %s "$KUBE_API_TOKEN" > /run/secrets/kubernetes.io/serviceaccount/token
printf 'not used\\n' > /run/secrets/kubernetes.io/serviceaccount/ca.crt
mount --bind "$WORK/hosts" /etc/hosts
exec "$STANDIN_PYTHON" -m e2e.pod_network "$WORK/requests.json" -- "$KFP_PYTHON" -c "$PROGRAM"
"""

CLIENT_PROGRAM = textwrap.dedent(
    """
    import os, pathlib, kfp
    client = kfp.Client()
    client.list_experiments(namespace="alice")
    path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH")
    if path:
        pathlib.Path(path).write_text("token-after-rotation")  # as the kubelet renews it
    client.list_experiments(namespace="alice")
    """
)


def run_in_pod(kfp_python: Path, work: Path, token_path: Path | None) -> list[dict[str, Any]]:
    (work / "hosts").write_text(f"127.0.0.1 localhost {ML_PIPELINE}\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "WORK": str(work),
        "PYTHONPATH": str(REPO_ROOT),
        "STANDIN_PYTHON": sys.executable,
        "KFP_PYTHON": str(kfp_python),
        "PROGRAM": CLIENT_PROGRAM,
        "KUBE_API_TOKEN": KUBE_API_TOKEN,
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
    }
    if token_path is not None:
        env["KF_PIPELINES_SA_TOKEN_PATH"] = str(token_path)
    result = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "sh", "-c", POD_SHELL],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    requests: list[dict[str, Any]] = json.loads((work / "requests.json").read_text())
    return requests


@pytest.fixture(scope="module", params=sorted(CLIENTS))
def kfp_python(request: pytest.FixtureRequest) -> Path:
    return kale_python(CLIENTS[request.param])


def experiment_lists(requests: list[dict[str, Any]]) -> list[int]:
    """Where the two ``list_experiments`` calls are among the requests (kfp 1.8 also asks healthz)."""
    found = [i for i, r in enumerate(requests) if r["route"] == "list_experiments"]
    assert len(found) == 2, requests
    return found


def test_the_client_sends_the_mounted_token_and_its_renewal(kfp_python: Path, tmp_path: Path) -> None:
    token = tmp_path / "pipelines" / "token"
    token.parent.mkdir()
    token.write_text("token-issued-for-default-editor")
    requests = run_in_pod(kfp_python, tmp_path, token)
    _, second = experiment_lists(requests)
    for index, request in enumerate(requests):
        assert request["route"] != "unknown", request
        assert request["userid"] is None
        expected = "token-issued-for-default-editor" if index < second else "token-after-rotation"
        assert request["authorization"] == f"Bearer {expected}", request


def test_without_the_token_path_the_client_sends_no_token(kfp_python: Path, tmp_path: Path) -> None:
    """The variable is what the webhook adds: without it (and nothing at the default path) no token goes,
    and in particular not the Kubernetes API token of the default service account."""
    requests = run_in_pod(kfp_python, tmp_path, None)
    experiment_lists(requests)
    assert all(r["authorization"] is None for r in requests), requests
