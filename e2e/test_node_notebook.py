"""A notebook Pod on the local node: our webhook (in token identity mode) labels it and mounts a projected
ServiceAccount token; the token the kubelet really mounted passes TokenReview for the Kubeflow Pipelines
audience, as KFP >= 1.7 checks it, and only for that audience."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl
from e2e.cluster.node import BUSYBOX_IMAGE, Node, pod
from e2e.framework.processes import eventually
from service.config import Config
from webhook.mutations import notebook

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NAMESPACE = "e2e-node-notebooks"
CONFIGURATION = "kubeflow-extension-token-e2e"
POD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def token_webhook(control_plane: ControlPlane, kubectl: Kubectl, node: Node) -> Iterator[str]:
    """The shipped webhook configuration, served by a webhook in token mode, for this namespace only."""
    server = control_plane.start_service(
        "webhook-token", "webhook.app:app", tls=True, env={"KFEXT_IDENTITY_MODE": "token"}
    )
    documents = control_plane.localized_manifests(REPO_ROOT / "webhook" / "manifests", webhook=server)
    (configuration,) = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    configuration["metadata"] = {"name": CONFIGURATION}
    for hook in configuration["webhooks"]:
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    labels = {"app.kubernetes.io/part-of": "kubeflow-profile"}
    account = {"name": "default-editor", "namespace": NAMESPACE}
    kubectl.apply([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account},
        configuration,
    ])  # fmt: skip
    eventually(partial(kubectl.get, "serviceaccount", "default", NAMESPACE), what="default SA")
    try:
        yield NAMESPACE
    finally:
        kubectl.run("delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found")
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false")
        server.stop()


def token_review(kubectl: Kubectl, token: str, audiences: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token, **({"audiences": audiences} if audiences else {})}
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    status: dict[str, Any] = kubectl("create", "-f", "-", stdin=json.dumps(review))["status"]
    return status


def test_notebook_runs_labelled_with_a_token_for_kfp(kubectl: Kubectl, token_webhook: str) -> None:
    labels = {notebook.NOTEBOOK_LABEL: "nb"}
    container = {"name": "nb", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}
    kubectl.apply(
        [
            pod(
                "nb-0",
                [container],
                namespace=token_webhook,
                labels=labels,
                serviceAccountName="default-editor",
            )
        ]
    )

    def running() -> dict[str, Any] | None:
        stored = kubectl.get("pod", "nb-0", token_webhook) or {}
        return stored if stored.get("status", {}).get("phase") == "Running" else None

    stored = eventually(running, timeout=POD_TIMEOUT, what="the notebook Pod running")
    assert stored["metadata"]["labels"][Config().workload_label] == "true"
    token = kubectl.run(
        "exec", "-n", token_webhook, "nb-0", "--", "sh", "-c", 'cat "$KF_PIPELINES_SA_TOKEN_PATH"'
    ).stdout.strip()
    audience = Config().token_audience
    status = token_review(kubectl, token, [audience])
    assert status.get("authenticated") is True, status
    assert status["user"]["username"] == f"system:serviceaccount:{token_webhook}:default-editor"
    assert status["audiences"] == [audience]
    # The same token is no API server credential: its audience is KFP's only.
    assert not token_review(kubectl, token, []).get("authenticated")
