"""Pods really run: the local node (containerd, kubelet, kube-scheduler) runs a Pod whose containers share
a process namespace, reports their exit codes, serves ``kubectl exec`` and ``logs``, and completes a Job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cluster.controlplane import Kubectl
from e2e.cluster.node import BUSYBOX_IMAGE, NODE_NAME, PAUSE_IMAGE, Node, pod, pod_spec
from e2e.framework.processes import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NAMESPACE = "e2e-node"
POD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def namespace(node: Node, kubectl: Kubectl) -> Iterator[str]:
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    eventually(lambda: kubectl.get("serviceaccount", "default", NAMESPACE), what="default ServiceAccount")
    yield NAMESPACE
    kubectl.run("delete", "namespace", NAMESPACE, "--wait=false")


def terminated(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any] | None:
    """``{container: state.terminated}`` once every container of the Pod has terminated."""
    status = (kubectl.get("pod", name, namespace) or {}).get("status", {})
    states = {s["name"]: s.get("state", {}) for s in status.get("containerStatuses", [])}
    if states and all("terminated" in s for s in states.values()):
        return {name: state["terminated"] for name, state in states.items()}
    return None


def running(kubectl: Kubectl, name: str, namespace: str) -> bool:
    status = (kubectl.get("pod", name, namespace) or {}).get("status", {})
    states = [s.get("state", {}) for s in status.get("containerStatuses", [])]
    return bool(states) and all("running" in s for s in states)


def test_node_is_ready_with_our_images(node: Node, kubectl: Kubectl) -> None:
    status = kubectl("get", "node", NODE_NAME)["status"]
    assert {"type": "Hostname", "address": NODE_NAME} in status["addresses"]
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    images = {name for image in status.get("images", []) for name in image["names"]}
    assert {f"{PAUSE_IMAGE}", f"{BUSYBOX_IMAGE}"} <= images


def test_shared_process_namespace_exit_code_exec_and_logs(kubectl: Kubectl, namespace: str) -> None:
    """The watcher sees the main container's process (same PID namespace, the pause program as PID 1) and
    its exit; ``kubectl exec`` releases main, whose exit code 3 reaches the Pod status."""
    shared = {"name": "shared", "mountPath": "/shared"}
    main = {
        "name": "main",
        "image": BUSYBOX_IMAGE,
        "command": [
            "sh",
            "-c",
            # $$$$: the kubelet turns $$ into $ in commands; the shell then sees $$, its PID.
            "echo $$$$ >/shared/main.pid; until [ -f /shared/go ]; do sleep 0.2; done; exit 3",
        ],
        "volumeMounts": [shared],
    }
    watcher = {
        "name": "watcher",
        "image": BUSYBOX_IMAGE,
        "command": [
            "sh",
            "-c",
            "until [ -s /shared/main.pid ]; do sleep 0.2; done; pid=$(cat /shared/main.pid); "
            'echo "pid 1 is $(tr "\\0" " " </proc/1/cmdline)"; '
            'while [ -d /proc/$pid ]; do sleep 0.2; done; echo "main (pid $pid) exited"',
        ],
        "volumeMounts": [shared],
    }
    manifest = pod(
        "shared-pid",
        [main, watcher],
        namespace=namespace,
        shareProcessNamespace=True,
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    kubectl.apply([manifest])
    eventually(
        lambda: running(kubectl, "shared-pid", namespace), timeout=POD_TIMEOUT, what="both containers running"
    )
    pid = kubectl.run(
        "exec", "-n", namespace, "shared-pid", "-c", "main", "--", "cat", "/shared/main.pid"
    ).stdout
    assert pid.strip().isdigit() and pid.strip() != "1"  # PID 1 is the sandbox's pause program
    kubectl.run("exec", "-n", namespace, "shared-pid", "-c", "main", "--", "touch", "/shared/go")

    states = eventually(
        lambda: terminated(kubectl, "shared-pid", namespace),
        timeout=POD_TIMEOUT,
        what="both containers terminated",
    )
    assert states["main"]["exitCode"] == 3
    assert states["watcher"]["exitCode"] == 0
    logs = kubectl.run("logs", "-n", namespace, "shared-pid", "-c", "watcher").stdout
    assert logs.splitlines() == ["pid 1 is /pause ", f"main (pid {pid.strip()}) exited"]
    eventually(
        lambda: kubectl("get", "pod", "shared-pid", "-n", namespace)["status"]["phase"] == "Failed",
        what="the Pod's phase Failed (a container exited non-zero)",
    )


def test_job_completes(kubectl: Kubectl, namespace: str) -> None:
    container = {"name": "work", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "echo work done"]}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "work", "namespace": namespace},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec([container])}},
    }
    kubectl.apply([job])

    def complete() -> dict[str, Any] | None:
        status = kubectl("get", "job", "work", "-n", namespace).get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return status if conditions.get("Complete") == "True" or conditions.get("Failed") == "True" else None

    status = eventually(complete, timeout=POD_TIMEOUT, what="the Job finished")
    assert status.get("succeeded") == 1 and not status.get("failed")
    assert kubectl.run("logs", "-n", namespace, "job/work").stdout == "work done\n"
