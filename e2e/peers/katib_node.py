"""Katib v0.19.0 on the local node, for the trial tests: its CRDs, its own Pod injector served as an admission
webhook, its own file metrics collector in an image laid out like Katib's, its own db-manager on PostgreSQL,
a pilot-agent stand-in image for the classic ``istio-proxy`` container, and our webhook; two namespaces, one
where our webhook applies and one where only Katib's injector does.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.controlplane import LOOPBACK, REPO_ROOT, ControlPlane, Kubectl, LocalService, http_get
from e2e.cluster.node import IMAGE_REGISTRY, Node, busybox_applets
from e2e.framework import oci, versions
from e2e.framework.processes import ManagedProcess, eventually, free_port, wait_until
from e2e.peers.katib_db import KatibDatabase
from webhook.mutations import PROXY_CONTAINER

KATIB_VERSION = versions.parse_env_file(versions.VERSIONS_FILE.read_text())["KATIB_VERSION"]
COLLECTOR_IMAGE = f"{IMAGE_REGISTRY}/katib/file-metrics-collector:v{KATIB_VERSION}"
"""The collector on Debian's busybox-static (the node's BusyBox)."""
PROXY_IMAGE = f"{IMAGE_REGISTRY}/istio/proxyv2:stand-in"
PROFILE = "e2e-node-profile"
"""A profile namespace: our webhook and Katib's injector both apply."""
UNPATCHED = "e2e-node-katib-only"
"""Katib's injector applies, ours does not: the trial as it runs without this project."""
INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
TRIAL_TIMEOUT = 180.0
HANG_WINDOW = 45.0
"""How long the trial without our webhook is watched not finishing after its main container ended (Katib's
collector polls every second; ours stops the proxy within seconds)."""


def katib_bin() -> Path:
    return versions.cache_dir() / f"katib-{KATIB_VERSION}" / "bin"


def import_collector(node: Node, image: str, busybox: Path) -> None:
    """Katib's collector image as Katib lays it out (WORKDIR /app, ENTRYPOINT ./file-metricscollector) on
    ``busybox``."""
    collector_file = oci.Layer(files={"/app/file-metricscollector": katib_bin() / "file-metricscollector"})
    node.import_image(
        image,
        oci.busybox_layer(busybox, busybox_applets(busybox), collector_file),
        oci.ImageConfig(entrypoint=["./file-metricscollector"], working_dir="/app"),
    )


@dataclass
class Katib:
    """Katib's parts for trials on the node: its database, its Pod injector, its collector image."""

    database: KatibDatabase
    injector: ManagedProcess


@contextmanager
def running_katib(
    control_plane: ControlPlane, kubectl: Kubectl, node: Node, webhook_server: LocalService
) -> Iterator[Katib]:
    """Katib's CRDs, its collector and the proxy stand-in's images on the node, its database and Pod injector
    running, our webhook registered, and the namespaces ``PROFILE`` and ``UNPATCHED``; all removed after."""
    binaries = katib_bin()
    needed = [
        "db-manager",
        "file-metricscollector",
        "injector-webhook",
        "observation-logs",
        "katib-source-dir",
    ]
    missing = [name for name in needed if not (binaries / name).is_file()]
    if missing:
        pytest.fail(
            f"not built in {binaries}: {missing}; run e2e/build-control-plane.sh katib", pytrace=False
        )
    source = Path((binaries / "katib-source-dir").read_text().strip())
    crds = source / "manifests" / "v1beta1" / "components" / "crd"
    kubectl.run("apply", "--server-side", "--field-manager=e2e", *(f"--filename={crds / f}" for f in
                ("experiment.yaml", "trial.yaml", "suggestion.yaml")))  # fmt: skip
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "crd/suggestions.kubeflow.org")

    import_collector(node, COLLECTOR_IMAGE, node.busybox)
    node.import_image(
        PROXY_IMAGE,
        oci.Layer(files={"/usr/local/bin/pilot-agent": node.programs / "pilot-agent"}, directories=["/tmp"]),
        oci.ImageConfig(entrypoint=["/usr/local/bin/pilot-agent"]),
    )
    with KatibDatabase(binaries) as database:
        injector = start_injector(control_plane, binaries, database)
        try:
            kubectl.apply(katib_objects(control_plane, injector_port(injector)))
            control_plane.apply_project_manifests(REPO_ROOT / "webhook" / "manifests", webhook=webhook_server)
            for name, labels in (
                (PROFILE, {INJECTION_LABEL: "enabled", "app.kubernetes.io/part-of": "kubeflow-profile"}),
                (UNPATCHED, {INJECTION_LABEL: "enabled"}),
            ):
                account = {"name": "default-editor", "namespace": name}
                kubectl.apply([
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account},
                ])  # fmt: skip
                eventually(
                    partial(kubectl.get, "serviceaccount", "default", name), what=f"default SA in {name}"
                )
            yield Katib(database, injector)
        finally:
            kubectl.run("delete", "mutatingwebhookconfiguration", "katib.kubeflow.org", "--ignore-not-found")
            kubectl.run("delete", "namespace", PROFILE, UNPATCHED, "--ignore-not-found", "--wait=false")
            injector.stop()


def start_injector(plane: ControlPlane, binaries: Path, database: KatibDatabase) -> ManagedProcess:
    """Katib's SidecarInjector served over HTTPS on loopback; its collectors report to ``database``."""
    serving = plane.ca.issue_loopback_serving("katib-injector")
    port = free_port()
    host, db_port = database.address.rsplit(":", 1)
    process = ManagedProcess(
        "katib-injector",
        [str(binaries / "injector-webhook"), f"-listen={LOOPBACK}:{port}", f"-cert={serving.cert}",
         f"-key={serving.key}", f"-kubeconfig={plane.kubeconfig}"],
        plane.logs_dir / "katib-injector.log",
        env={"KATIB_DB_MANAGER_SERVICE_IP": host, "KATIB_DB_MANAGER_SERVICE_PORT": db_port,
             "KATIB_DB_MANAGER_SERVICE_NAMESPACE": "", "NO_PROXY": "127.0.0.1,localhost"},
    )  # fmt: skip
    process.start()
    context = ssl.create_default_context(cafile=str(plane.ca.files.cert))
    wait_until(
        lambda: http_get(f"https://{LOOPBACK}:{port}/healthz", context=context) == 200,
        timeout=60,
        what="Katib's injector /healthz",
        watch=[process],
    )
    return process


def injector_port(process: ManagedProcess) -> int:
    flag = next(a for a in process.argv if a.startswith("-listen="))
    return int(flag.rsplit(":", 1)[1])


def katib_config(image: str = COLLECTOR_IMAGE) -> dict[str, Any]:
    """katib-config: the File and StdOut collectors are ``image`` (Katib's file collector serves both, as in
    Katib's own katib-config), never pulled; waitAllProcesses left at Katib's default. Katib's injector reads
    it for every Pod, so applying another one switches the collector image."""
    collectors = "".join(
        f"    - kind: {kind}\n      image: {image}\n      imagePullPolicy: Never\n"
        for kind in ("File", "StdOut")
    )
    config = (
        "apiVersion: config.kubeflow.org/v1beta1\nkind: KatibConfig\nruntime:\n  metricsCollectors:\n"
        + collectors
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "katib-config", "namespace": "kubeflow"},
        "data": {"katib-config.yaml": config},
    }


def katib_objects(plane: ControlPlane, port: int) -> list[dict[str, Any]]:
    """katib-config with the collector on Debian's BusyBox, and Katib's Pod webhook registration as Katib's
    manifests have it, pointed at the local injector."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}},
        katib_config(),
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "katib.kubeflow.org"},
            "webhooks": [
                {
                    "name": "mutator.pod.katib.kubeflow.org",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "clientConfig": {
                        "url": f"https://{LOOPBACK}:{port}/mutate-pod",
                        "caBundle": base64.b64encode(plane.ca.cert_pem).decode(),
                    },
                    "namespaceSelector": {"matchLabels": {INJECTION_LABEL: "enabled"}},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                }
            ],
        },
    ]


def trial_pod(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any] | None:
    pods = kubectl("get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={name}")["items"]
    return pods[0] if pods else None


def container_states(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s.get("state", {}) for s in pod.get("status", {}).get("containerStatuses", [])}


def job_condition(kubectl: Kubectl, name: str, namespace: str) -> str | None:
    status = kubectl("get", "job", name, "-n", namespace).get("status", {})
    done = [
        c["type"]
        for c in status.get("conditions", [])
        if c["type"] in ("Complete", "Failed") and c["status"] == "True"
    ]
    return done[0] if done else None


def reported(logs: list[dict[str, Any]]) -> dict[str, list[str]]:
    by_metric: dict[str, list[str]] = {}
    for entry in logs:
        by_metric.setdefault(entry["metric"]["name"], []).append(entry["metric"]["value"])
    return by_metric


def proxy_container() -> dict[str, Any]:
    """The classic ``istio-proxy`` sidecar, as Istio's injector would add it: the pilot-agent stand-in."""
    return {"name": PROXY_CONTAINER, "image": PROXY_IMAGE, "args": ["proxy", "sidecar"]}


def trial_owner(name: str, uid: str) -> list[dict[str, Any]]:
    """The ownerReferences Katib's trial controller puts on a trial's Job (our webhook keys on them)."""
    return [
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": name, "uid": uid,
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip


def main_ended(kubectl: Kubectl, name: str, namespace: str, container: str) -> dict[str, Any]:
    """The trial's Pod once its ``container`` has terminated."""

    def ended() -> dict[str, Any] | None:
        pod = trial_pod(kubectl, name, namespace)
        return pod if "terminated" in container_states(pod or {}).get(container, {}) else None

    return eventually(ended, timeout=TRIAL_TIMEOUT, what=f"the trial's {container} ended")


def container_log(kubectl: Kubectl, pod: dict[str, Any], container: str) -> str:
    meta = pod["metadata"]
    return kubectl.run("logs", "-n", meta["namespace"], meta["name"], "-c", container).stdout


def proxy_stop_line(kubectl: Kubectl, pod: dict[str, Any]) -> tuple[str, str]:
    """The pilot-agent stand-in's line saying what stopped it, and its whole log (for failure messages)."""
    log = container_log(kubectl, pod, PROXY_CONTAINER)
    return next(line for line in log.splitlines() if line.startswith("stopped by ")), log
