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

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT
from e2e.framework.pki import CertificateAuthority
from e2e.peers.kale_peers import kale_python
from e2e.peers.ml_pipeline_standin import NAMESPACE
from e2e.test_kale_peers import RETRY, TRIAL, kale_pod
from tests.webhook.katib_objects import kubelet_expand
from webhook.mutate import mutate_object

pytestmark = pytest.mark.e2e

ML_PIPELINE = "ml-pipeline.kubeflow.svc.cluster.local"
KUBE_API_TOKEN = "the-default-service-account-token-not-for-kfp"
CLIENTS = {"kfp 1.8.22": "0.7.0", "kfp 2.16.0": "2.3.0"}
"""Each kfp client, by the Kale release whose environment holds it (e2e/peers/kale_peers.py)."""

POD_SHELL = """
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
printf %s "$KUBE_API_TOKEN" > /run/secrets/kubernetes.io/serviceaccount/token
printf 'not used\\n' > /run/secrets/kubernetes.io/serviceaccount/ca.crt
mount --bind "$WORK/hosts" /etc/hosts
exec "$STANDIN_PYTHON" -m e2e.peers.pod_network "$WORK/requests.json" -- "$KFP_PYTHON" -c "$PROGRAM"
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


TRIAL_SHELL = """
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount "$(dirname "$KF_PIPELINES_SA_TOKEN_PATH")"
printf %s "$KUBE_API_TOKEN" > /run/secrets/kubernetes.io/serviceaccount/token
cp "$CA_FILE" /run/secrets/kubernetes.io/serviceaccount/ca.crt
printf %s "$NAMESPACE" > /run/secrets/kubernetes.io/serviceaccount/namespace
printf %s "$PIPELINES_TOKEN" > "$KF_PIPELINES_SA_TOKEN_PATH"
mount --bind "$WORK/hosts" /etc/hosts
exec "$STANDIN_PYTHON" -m e2e.peers.pod_network "$WORK/requests.json" -- sh -c "$LINE"
"""


def test_kales_patched_polling_keeps_working_in_token_mode(tmp_path: Path) -> None:
    """Kale 0.7.0's trial (kfp 1.8.22), as the webhook leaves it in token mode, run in a Pod-like namespace:
    in-cluster, both its kfp client and its Kubernetes client (over TLS) take their in-cluster paths, the
    polling survives dropped connections, 503 and 429 through the inserted retry, and every call to
    ml-pipeline carries the mounted token and no identity header."""
    config = dataclasses.replace(RETRY, identity_mode="token")
    pod = mutate_object(kale_pod("0.7.0", "v1beta1", str(tmp_path)), config).obj
    main = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in main["env"]}
    ca = CertificateAuthority(tmp_path / "pki")
    serving = ca.issue_loopback_serving("kubernetes")
    (tmp_path / "hosts").write_text(f"127.0.0.1 localhost {ML_PIPELINE}\n")
    faults = {"get_run": ["drop", "drop", "drop", "drop", 503, 429]}
    result = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "sh", "-c", TRIAL_SHELL],
        env={
            "PATH": f"{kale_python('0.7.0').parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "HOSTNAME": f"{TRIAL}-abcde",
            "WORK": str(tmp_path),
            "PYTHONPATH": str(REPO_ROOT),
            "STANDIN_PYTHON": sys.executable,
            "STANDIN_FAULTS": json.dumps(faults),
            "STANDIN_TLS_CERT": str(serving.cert),
            "STANDIN_TLS_KEY": str(serving.key),
            "CA_FILE": str(ca.files.cert),
            "NAMESPACE": NAMESPACE,
            "KUBE_API_TOKEN": KUBE_API_TOKEN,
            "PIPELINES_TOKEN": "token-issued-for-default-editor",
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "KF_PIPELINES_SA_TOKEN_PATH": env["KF_PIPELINES_SA_TOKEN_PATH"],
            "LINE": kubelet_expand(main["args"][0], {}),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log_file = tmp_path / "metrics.log"
    log = (log_file.read_text() if log_file.exists() else "") + result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert [p.read_text().strip() for p in tmp_path.glob("*.pid")] == ["completed"], log[-4000:]
    retries = [line for line in log.splitlines() if "kubeflow-extension: get_run failed" in line]
    assert len(retries) == 3, log[-4000:]
    requests = json.loads((tmp_path / "requests.json").read_text())
    pipeline = [r for r in requests if r["listener"] == "ml-pipeline"]
    assert [r["answer"] for r in pipeline if r["route"] == "get_run"][:6] == faults["get_run"]
    assert {r["route"] for r in pipeline} >= {"create_run", "get_run"}
    assert all(r["authorization"] == "Bearer token-issued-for-default-editor" for r in pipeline), pipeline
    assert all(r["userid"] is None for r in pipeline)
    kubernetes = [r for r in requests if r["listener"] == "kubernetes"]
    # The Kubernetes client keeps to the API server's own token (kubernetes 11 writes "bearer").
    assert kubernetes and all(r["authorization"].lower() == f"bearer {KUBE_API_TOKEN}" for r in kubernetes)
