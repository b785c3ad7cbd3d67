"""Smoke test of the local control plane itself: each upstream program does its part."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, LocalService
from e2e.framework.processes import eventually
from e2e.framework.stubs import JsonHandler

pytestmark = pytest.mark.e2e


def test_namespace_job_and_namespace_deletion(kubectl: Kubectl) -> None:
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "smoke"}}])
    # serviceaccount controller
    eventually(lambda: kubectl.get("serviceaccount", "default", "smoke"), what="default ServiceAccount")
    # root-ca-certificate-publisher controller
    eventually(lambda: kubectl.get("configmap", "kube-root-ca.crt", "smoke"), what="kube-root-ca.crt")

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "smoke", "namespace": "smoke"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "registry.invalid/none:0", "command": ["true"]}],
                }
            }
        },
    }
    kubectl.apply([job])
    # job controller: nothing schedules or runs the Pod, but it is created
    pods = eventually(
        lambda: kubectl("get", "pods", "-n", "smoke", "-l", "batch.kubernetes.io/job-name=smoke")["items"],
        what="the Job's Pod",
    )
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Job", "smoke", True)
    assert pods[0]["spec"]["serviceAccountName"] == "default"

    # namespace controller (the unscheduled Pod is deleted at once); it waits a fixed 5 s before it starts
    kubectl.run("delete", "namespace", "smoke", "--wait=false")
    eventually(lambda: kubectl.get("namespace", "smoke") is None, what="namespace smoke to disappear")


class _SyncHook(JsonHandler):
    """Answers Metacontroller's sync hook with one ConfigMap in the parent namespace."""

    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        request = self.read_json()
        type(self).calls.append(request)
        namespace = request["object"]["metadata"]["name"]
        attachment = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "smoke-attachment", "namespace": namespace},
            "data": {"parent": namespace},
        }
        self.answer(200, {"attachments": [] if request.get("finalizing") else [attachment]})


@pytest.fixture
def sync_hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SyncHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SyncHook.calls = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sync", _SyncHook.calls
    finally:
        server.shutdown()
        server.server_close()


def test_metacontroller_decorator_controller_calls_hook_and_creates_attachment(
    kubectl: Kubectl, sync_hook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, calls = sync_hook
    controller = {
        "apiVersion": "metacontroller.k8s.io/v1alpha1",
        "kind": "DecoratorController",
        "metadata": {"name": "smoke"},
        "spec": {
            "resources": [
                {
                    "apiVersion": "v1",
                    "resource": "namespaces",
                    "labelSelector": {"matchLabels": {"e2e-smoke": "decorate"}},
                }
            ],
            "attachments": [
                {"apiVersion": "v1", "resource": "configmaps", "updateStrategy": {"method": "InPlace"}}
            ],
            "hooks": {"sync": {"webhook": {"url": url, "timeout": "10s"}}},
        },
    }
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "smoke-decorated", "labels": {"e2e-smoke": "decorate"}},
    }
    kubectl.apply([controller, namespace])
    try:
        attachment = eventually(
            lambda: kubectl.get("configmap", "smoke-attachment", "smoke-decorated"),
            what="the attachment created by Metacontroller",
        )
        assert attachment["data"] == {"parent": "smoke-decorated"}
        owner = attachment["metadata"]["ownerReferences"][0]
        parent = kubectl("get", "namespace", "smoke-decorated")
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Namespace",
            "smoke-decorated",
            parent["metadata"]["uid"],
        )
        assert calls, "the sync hook was never called"
        assert calls[0]["controller"]["metadata"]["name"] == "smoke"
        assert calls[0]["object"]["metadata"]["name"] == "smoke-decorated"
    finally:
        kubectl.run("delete", "decoratorcontroller", "smoke", "--ignore-not-found")
        kubectl.run("delete", "namespace", "smoke-decorated", "--ignore-not-found", "--wait=false")


@pytest.mark.parametrize("overlay", ["metacontroller", "metacontroller/legacy-istio"])
def test_project_manifests_apply_localized(
    control_plane: ControlPlane, hooks_server: LocalService, overlay: str
) -> None:
    """The project's DecoratorController manifests, pointed at the local hooks, pass server-side dry-run."""
    documents = control_plane.localized_manifests(REPO_ROOT / overlay, hooks=hooks_server)
    controllers = [d for d in documents if d["kind"] == "DecoratorController"]
    assert controllers
    for controller in controllers:
        for hook in controller["spec"]["hooks"].values():
            assert hook["webhook"]["url"].startswith(f"{hooks_server.url}/")
    assert not [d for d in documents if d["kind"] in ("Deployment", "Service")]
    # A dry run creates nothing, so the objects in the project's namespace need it to exist for real.
    namespaces = [d for d in documents if d["kind"] == "Namespace"]
    control_plane.kubectl.apply(namespaces)
    output = control_plane.kubectl.apply(documents, dry_run=True)
    assert "decoratorcontroller.metacontroller.k8s.io/" in output, output
