"""A Katib trial really finishes behind a classic Istio sidecar, on real programs: Katib v0.19.0's own Pod
injection (its SidecarInjector as an admission webhook), Katib's own file metrics collector in an image laid
out like Katib's, Katib's own db-manager on PostgreSQL, a pilot-agent stand-in that runs until
``POST 127.0.0.1:15020/quitquitquit``, and our webhook. Without our webhook the same trial never ends.

The collector image's shell and tools are BusyBox, in two builds: Debian's busybox-static (no ``wget -T``,
no ``pkill``) and one from the same Debian source with a configuration like Alpine's, which has both
(``e2e/build-control-plane.sh busybox``).
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from e2e import oci, versions
from e2e.controlplane import LOOPBACK, REPO_ROOT, ControlPlane, Kubectl, LocalService, http_get
from e2e.katib_db import KatibDatabase
from e2e.node import BUSYBOX_IMAGE, IMAGE_REGISTRY, Node, busybox_applets, pod_spec
from e2e.processes import ManagedProcess, eventually, free_port, wait_until
from webhook.mutations import collector

pytestmark = [pytest.mark.e2e, pytest.mark.node]

KATIB_VERSION = versions.parse_env_file(versions.VERSIONS_FILE.read_text())["KATIB_VERSION"]
COLLECTOR_IMAGE = f"{IMAGE_REGISTRY}/katib/file-metrics-collector:v{KATIB_VERSION}"
"""The collector on Debian's busybox-static (the node's BusyBox)."""
DEBIAN_STATIC, FULL = "debian-static", "full"
BUSYBOX_FEATURES = {
    DEBIAN_STATIC: {"wget --post-data": True, "wget -T": False, "pgrep": False, "pkill": False},
    FULL: {"wget --post-data": True, "wget -T": True, "pgrep": True, "pkill": True},
}
"""What each BusyBox of the collector image offers a proxy-stop recipe (ours needs only ``--post-data``)."""
PROXY_IMAGE = f"{IMAGE_REGISTRY}/istio/proxyv2:stand-in"
PROFILE = "e2e-node-profile"
"""A profile namespace: our webhook and Katib's injector both apply."""
UNPATCHED = "e2e-node-katib-only"
"""Katib's injector applies, ours does not: the trial as it runs without this project."""
INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
METRICS_FILE = "/var/log/katib/metrics.log"
EPOCHS = {"accuracy": ["0.71", "0.82", "0.93"], "loss": ["0.45", "0.32", "0.21"]}
TRIAL_TIMEOUT = 180.0
HANG_WINDOW = 45.0
"""How long the trial without our webhook is watched not finishing after its main container ended (Katib's
collector polls every second; ours stops the proxy within seconds)."""


def katib_bin() -> Path:
    return versions.cache_dir() / f"katib-{KATIB_VERSION}" / "bin"


def collector_image(variant: str) -> str:
    """The collector image on that BusyBox: the same release tag, with the variant after it."""
    return COLLECTOR_IMAGE if variant == DEBIAN_STATIC else f"{COLLECTOR_IMAGE}-busybox-{variant}"


def import_collector(node: Node, variant: str, busybox: Path) -> None:
    """Katib's collector image as Katib lays it out (WORKDIR /app, ENTRYPOINT ./file-metricscollector) on
    ``busybox``."""
    collector_file = oci.Layer(files={"/app/file-metricscollector": katib_bin() / "file-metricscollector"})
    node.import_image(
        collector_image(variant),
        oci.busybox_layer(busybox, busybox_applets(busybox), collector_file),
        oci.ImageConfig(entrypoint=["./file-metricscollector"], working_dir="/app"),
    )


def busybox_features(busybox: Path) -> dict[str, bool]:
    """What this BusyBox binary has of ``BUSYBOX_FEATURES``: its applet list and its wget's usage text."""
    applets = set(busybox_applets(busybox))
    usage = subprocess.run(
        [str(busybox), "wget", "--help"], capture_output=True, text=True, check=False, timeout=30
    )
    wget = usage.stdout + usage.stderr
    return {
        "wget --post-data": "--post-data STR" in wget,
        "wget -T": "-T SEC" in wget,
        "pgrep": "pgrep" in applets,
        "pkill": "pkill" in applets,
    }


@dataclass
class Katib:
    """Katib's parts for trials on the node: its database, its Pod injector, its collector image."""

    database: KatibDatabase
    injector: ManagedProcess


@pytest.fixture(scope="module")
def katib(
    control_plane: ControlPlane, kubectl: Kubectl, node: Node, webhook_server: LocalService
) -> Iterator[Katib]:
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

    import_collector(node, DEBIAN_STATIC, node.busybox)
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
    """katib-config: the File collector is ``image``, never pulled; waitAllProcesses left at Katib's default.
    Katib's injector reads it for every Pod, so applying another one switches the collector image."""
    config = (
        "apiVersion: config.kubeflow.org/v1beta1\nkind: KatibConfig\nruntime:\n  metricsCollectors:\n"
        f"    - kind: File\n      image: {image}\n      imagePullPolicy: Never\n"
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


def main_program() -> str:
    """The trial's training program: three epochs of metrics into Katib's file, in Katib's TEXT format."""
    lines = [
        f"epoch {i + 1}: accuracy={accuracy} loss={loss}"
        for i, (accuracy, loss) in enumerate(zip(EPOCHS["accuracy"], EPOCHS["loss"], strict=True))
    ]
    writes = " ".join(f"echo '{line}' >>{METRICS_FILE}; sleep 1;" for line in lines)
    return f"( {writes} )"


def trial_objects(name: str, namespace: str) -> list[dict[str, Any]]:
    """The Experiment, Suggestion and Trial as Katib's controllers keep them (the injector reads them)."""
    meta = {"name": name, "namespace": namespace}
    objective = {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"]}
    collector_spec = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": METRICS_FILE, "kind": "File", "format": "TEXT"}},
    }
    algorithm = {"algorithmName": "random"}
    return [
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": meta,
            "spec": {"objective": objective, "algorithm": algorithm, "metricsCollectorSpec": collector_spec},
        },
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Suggestion",
            "metadata": meta,
            "spec": {"algorithm": algorithm},
        },
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Trial",
            "metadata": {**meta, "labels": {"katib.kubeflow.org/experiment": name}},
            "spec": {
                "objective": objective,
                "metricsCollector": collector_spec,
                "primaryContainerName": "training-container",
            },
        },
    ]


def trial_job(name: str, namespace: str, trial_uid: str) -> dict[str, Any]:
    """The trial's Job as Katib's trial controller creates it, with the proxy Istio would have injected."""
    main = {"name": "training-container", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", main_program()]}
    proxy = {"name": collector.PROXY_CONTAINER, "image": PROXY_IMAGE, "args": ["proxy", "sidecar"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": name, "uid": trial_uid,
                 "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec([main, proxy])}},
    }  # fmt: skip


def start_trial(kubectl: Kubectl, name: str, namespace: str) -> None:
    kubectl.apply(trial_objects(name, namespace))
    uid = kubectl("get", "trial", name, "-n", namespace)["metadata"]["uid"]
    kubectl.run("create", "-f", "-", stdin=json.dumps(trial_job(name, namespace, uid)))


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


@pytest.fixture(scope="module")
def busybox_variants(node: Node, katib: Katib) -> dict[str, Path]:
    """Each BusyBox of the collector image by variant, with its image imported (Debian's by ``katib``)."""
    source = versions.installed_source_version("busybox-static")
    full = versions.full_busybox(source) if source else None
    if full is None or not full.is_file():
        pytest.fail(
            f"the full BusyBox is not built ({full}); run e2e/build-control-plane.sh busybox", pytrace=False
        )
    import_collector(node, FULL, full)
    return {DEBIAN_STATIC: node.busybox, FULL: full}


@pytest.mark.parametrize("variant", [DEBIAN_STATIC, FULL])
def test_trial_finishes_and_reports_with_our_webhook(
    katib: Katib, kubectl: Kubectl, busybox_variants: dict[str, Path], variant: str
) -> None:
    # The two collector images really differ: the BusyBox going into each has what its variant says.
    assert busybox_features(busybox_variants[variant]) == BUSYBOX_FEATURES[variant]
    image = collector_image(variant)
    kubectl.apply([katib_config(image)])
    name = f"trial-finishes-{variant}"
    start_trial(kubectl, name, PROFILE)
    condition = eventually(
        lambda: job_condition(kubectl, name, PROFILE), timeout=TRIAL_TIMEOUT, what="the trial Job finished"
    )
    pod = trial_pod(kubectl, name, PROFILE)
    assert pod is not None
    states = container_states(pod)
    assert set(states) == {"training-container", "istio-proxy", collector.FILE_COLLECTOR_CONTAINER}
    exit_codes = {name: state.get("terminated", {}).get("exitCode") for name, state in states.items()}
    assert exit_codes == {"training-container": 0, "istio-proxy": 0, collector.FILE_COLLECTOR_CONTAINER: 0}
    assert condition == "Complete"
    # Katib's injector and ours both acted on this Pod.
    wrapped = next(c for c in pod["spec"]["containers"] if c["name"] == collector.FILE_COLLECTOR_CONTAINER)
    assert collector.is_wrapper(wrapped["command"]) and collector.WAIT_FLAG in wrapped["args"]
    assert wrapped["image"] == image
    # The collector's report reached Katib's database: every epoch of every metric, read back through Katib.
    logs = katib.database.observation_logs(name)
    print("observation logs read back through Katib's db-manager:", json.dumps(logs, indent=1))
    assert reported(logs) == EPOCHS
    # The proxy was told to stop by the wrapper, once the collector process was gone.
    proxy_log = kubectl.run("logs", "-n", PROFILE, pod["metadata"]["name"], "-c", "istio-proxy").stdout
    stop_line = next(line for line in proxy_log.splitlines() if line.startswith("stopped by "))
    print(f"istio-proxy stand-in ({variant} BusyBox):", stop_line)
    # By BusyBox's wget on either BusyBox (the image has no Python): the wrapper needs no -T and no pkill.
    assert stop_line.startswith('stopped by POST /quitquitquit (User-Agent "Wget")'), proxy_log
    assert "file-metricscollector" not in stop_line, proxy_log


def test_trial_without_our_webhook_never_finishes(katib: Katib, kubectl: Kubectl) -> None:
    name = "trial-hangs"
    kubectl.apply([katib_config()])
    start_trial(kubectl, name, UNPATCHED)

    def main_done() -> dict[str, Any] | None:
        pod = trial_pod(kubectl, name, UNPATCHED)
        main = container_states(pod or {}).get("training-container", {})
        return pod if "terminated" in main else None

    pod = eventually(main_done, timeout=TRIAL_TIMEOUT, what="the trial's main container ended")
    assert container_states(pod)["training-container"]["terminated"]["exitCode"] == 0
    time.sleep(HANG_WINDOW)
    later = trial_pod(kubectl, name, UNPATCHED)
    assert later is not None
    states = container_states(later)
    assert "running" in states["istio-proxy"] and "running" in states[collector.FILE_COLLECTOR_CONTAINER]
    print(f"{HANG_WINDOW:.0f} s after the main container ended:", json.dumps(states))
    assert job_condition(kubectl, name, UNPATCHED) is None
    assert katib.database.observation_logs(name) == []  # Katib's collector is still waiting for the proxy
    kubectl.run("delete", "job", name, "-n", UNPATCHED, "--cascade=foreground", "--timeout=120s")
