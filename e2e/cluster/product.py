"""The product in the cluster, as a user installs it: the image imported, the shipped kustomizations applied
with only an ``images:`` retarget, and profile namespaces for the load."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e2e.cluster.cluster import Cluster, Patch
from e2e.cluster.controlplane import REPO_ROOT
from e2e.cluster.load import trial_pod, was_mutated
from e2e.framework import objects
from e2e.framework.processes import eventually

DEFAULT_IMAGE = "localhost/kubeflow-extension:dev"
WEBHOOK_NAMESPACE = "kubeflow-extension"
WEBHOOK_DEPLOYMENT = "kubeflow-extension-webhook"
ROLLOUT_TIMEOUT = "240s"


def image() -> str:
    """The image under test: ``KUBEFLOW_EXTENSION_IMAGE`` (as ``just image-test``), else ``just image``'s."""
    return os.environ.get("KUBEFLOW_EXTENSION_IMAGE", DEFAULT_IMAGE)


def manifests_root() -> Path:
    """Where the shipped kustomizations are read: this checkout, or ``E2E_MANIFESTS_ROOT`` (another
    revision's checkout, to run a scenario against the manifests it shipped)."""
    return Path(os.environ.get("E2E_MANIFESTS_ROOT", REPO_ROOT))


def import_image(cluster: Cluster) -> None:
    cluster.import_image(image())


def deploy_webhook(
    cluster: Cluster,
    components: Sequence[str] = (),
    patches: Sequence[Patch] = (),
) -> None:
    """``webhook/self-managed-certificates`` (no cert-manager here) from the image, with ``components`` of
    ``webhook/`` and a user's ``patches``, then wait until its rollout is complete."""
    root = manifests_root()
    cluster.apply_kustomization(
        "webhook",
        [root / "webhook" / "self-managed-certificates"],
        image(),
        [root / "webhook" / component for component in components],
        patches=patches,
    )
    rollout_status(cluster, WEBHOOK_DEPLOYMENT)


WEBHOOK_SELECTOR = f"app.kubernetes.io/name={WEBHOOK_DEPLOYMENT}"


def webhook_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = cluster.kubectl(
        "get", "pods", "-n", WEBHOOK_NAMESPACE, "-l", WEBHOOK_SELECTOR
    )["items"]
    return pods


def all_replicas_ready(cluster: Cluster) -> bool:
    """As many webhook Pods as the Deployment wants, all ready (none left over from a rollout)."""
    deployment = cluster.kubectl.get("deployment", WEBHOOK_DEPLOYMENT, WEBHOOK_NAMESPACE)
    assert deployment is not None
    status, wanted = deployment["status"], deployment["spec"]["replicas"]
    return bool(status.get("readyReplicas") == wanted and len(webhook_pods(cluster)) == wanted)


HOOKS_DEPLOYMENT = "kubeflow-extension-hooks"


def deploy_hooks(cluster: Cluster) -> None:
    """Metacontroller from its release manifests, then ``metacontroller/`` (the hooks, their
    DecoratorController and RBAC) from the image; the Kubeflow namespace the authorization objects go to."""
    cluster.kubectl.run("create", "namespace", "kubeflow")
    cluster.deploy_metacontroller()
    cluster.apply_kustomization("hooks", [manifests_root() / "metacontroller"], image())
    rollout_status(cluster, HOOKS_DEPLOYMENT)


def rollout_status(
    cluster: Cluster, name: str, namespace: str = WEBHOOK_NAMESPACE, kind: str = "deployment"
) -> None:
    """Wait until the rollout of ``kind/name`` is complete (every replica updated and ready)."""
    cluster.kubectl.run(
        "rollout", "status", f"{kind}/{name}", "-n", namespace, f"--timeout={ROLLOUT_TIMEOUT}", timeout=300
    )


def rollout_restart(
    cluster: Cluster, name: str, namespace: str = WEBHOOK_NAMESPACE, kind: str = "deployment"
) -> float:
    """``kubectl rollout restart`` and wait until it is complete; returns its seconds. kubectl stamps the
    restart to the second and refuses a second one within it, so a fast rollout waits out its second."""
    started = time.monotonic()
    cluster.kubectl.run("rollout", "restart", f"{kind}/{name}", "-n", namespace)
    rollout_status(cluster, name, namespace, kind)
    elapsed = time.monotonic() - started
    time.sleep(max(0.0, 1.1 - elapsed))
    return elapsed


def create_profiles(cluster: Cluster, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Profile namespaces as Kubeflow's profile controller makes them, each with the Trial its Jobs belong
    to; returns the Trials by namespace."""
    trials = {}
    for name in names:
        for obj in objects.profile_objects(name, f"{name}@example.com"):
            cluster.kubectl("create", "-f", "-", stdin=json.dumps(obj))
        trials[name] = cluster.kubectl(
            "create", "-f", "-", stdin=json.dumps(objects.katib_trial("load", name))
        )
    return trials


def wait_until_mutating(cluster: Cluster, namespace: str, timeout: float = 120.0) -> float:
    """Seconds until a trial Pod created (server-side dry run) in ``namespace`` comes back mutated: the
    webhook's Secret and caBundle are in place and its Service routes to it."""
    began = time.monotonic()
    pod = trial_pod("ready-check")

    def mutated() -> bool:
        try:
            stored = cluster.kubectl(
                "create", "--dry-run=server", "-f", "-", "-n", namespace, stdin=json.dumps(pod)
            )
        except RuntimeError:
            return False
        return was_mutated(pod, stored)

    eventually(mutated, timeout=timeout, what=f"a trial Pod in {namespace} mutated through the Service")
    return time.monotonic() - began
