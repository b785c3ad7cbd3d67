"""A Katib trial really finishes behind a classic Istio sidecar, on real programs: Katib v0.19.0's own Pod
injection (its SidecarInjector as an admission webhook), Katib's own file metrics collector in an image laid
out like Katib's, Katib's own db-manager on PostgreSQL, a pilot-agent stand-in that runs until
``POST 127.0.0.1:15020/quitquitquit``, and our webhook. Without our webhook the same trial never ends.

The collector image's shell and tools are BusyBox, in two builds: Debian's busybox-static (no ``wget -T``,
no ``pkill``) and one from the same Debian source with a configuration like Alpine's, which has both
(``e2e/build-control-plane.sh busybox``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.controlplane import Kubectl
from e2e.cluster.node import BUSYBOX_IMAGE, Node, busybox_applets, pod_spec
from e2e.framework import versions
from e2e.framework.processes import eventually
from e2e.peers.katib_node import (
    COLLECTOR_IMAGE,
    HANG_WINDOW,
    PROFILE,
    TRIAL_TIMEOUT,
    UNPATCHED,
    Katib,
    container_states,
    import_collector,
    job_condition,
    katib_config,
    main_ended,
    proxy_container,
    proxy_stop_line,
    reported,
    trial_owner,
    trial_pod,
)
from webhook.mutations import collector

pytestmark = [pytest.mark.e2e, pytest.mark.node]

DEBIAN_STATIC, FULL = "debian-static", "full"
BUSYBOX_FEATURES = {
    DEBIAN_STATIC: {"wget --post-data": True, "wget -T": False, "pgrep": False, "pkill": False},
    FULL: {"wget --post-data": True, "wget -T": True, "pgrep": True, "pkill": True},
}
"""What each BusyBox of the collector image offers a proxy-stop recipe (ours needs only ``--post-data``)."""
METRICS_FILE = "/var/log/katib/metrics.log"
EPOCHS = {"accuracy": ["0.71", "0.82", "0.93"], "loss": ["0.45", "0.32", "0.21"]}


def collector_image(variant: str) -> str:
    """The collector image on that BusyBox: the same release tag, with the variant after it."""
    return COLLECTOR_IMAGE if variant == DEBIAN_STATIC else f"{COLLECTOR_IMAGE}-busybox-{variant}"


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
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": trial_owner(name, trial_uid)},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec([main, proxy_container()])}},
    }


def start_trial(kubectl: Kubectl, name: str, namespace: str) -> None:
    kubectl.apply(trial_objects(name, namespace))
    uid = kubectl("get", "trial", name, "-n", namespace)["metadata"]["uid"]
    kubectl.run("create", "-f", "-", stdin=json.dumps(trial_job(name, namespace, uid)))


@pytest.fixture(scope="module")
def busybox_variants(node: Node, katib: Katib) -> dict[str, Path]:
    """Each BusyBox of the collector image by variant, with its image imported (Debian's by ``katib``)."""
    source = versions.installed_source_version("busybox-static")
    full = versions.full_busybox(source) if source else None
    if full is None or not full.is_file():
        pytest.fail(
            f"the full BusyBox is not built ({full}); run e2e/build-control-plane.sh busybox", pytrace=False
        )
    import_collector(node, collector_image(FULL), full)
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
    stop_line, proxy_log = proxy_stop_line(kubectl, pod)
    print(f"istio-proxy stand-in ({variant} BusyBox):", stop_line)
    # By BusyBox's wget on either BusyBox (the image has no Python): the wrapper needs no -T and no pkill.
    assert stop_line.startswith('stopped by POST /quitquitquit (User-Agent "Wget")'), proxy_log
    assert "file-metricscollector" not in stop_line, proxy_log


def test_trial_without_our_webhook_never_finishes(katib: Katib, kubectl: Kubectl) -> None:
    name = "trial-hangs"
    kubectl.apply([katib_config()])
    start_trial(kubectl, name, UNPATCHED)
    pod = main_ended(kubectl, name, UNPATCHED, "training-container")
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
