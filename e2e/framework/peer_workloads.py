"""The workloads of the peers ``doctor`` reads versions from, standing in for them on a control plane
that runs no Pods: Metacontroller's StatefulSet, istiod's Deployment, ml-pipeline's, Katib's controller's.
Each has its upstream name, namespace and image (cited below); the Deployments keep zero replicas and the
StatefulSet's status is set to ready by hand, which is all doctor reads of them.
"""

from __future__ import annotations

import json
from typing import Any

from e2e.cluster.controlplane import Kubectl
from e2e.framework import versions
from e2e.framework.manifests import Document

METACONTROLLER = "metacontroller"
"""Name, namespace and service account: manifests/production/metacontroller.yaml@v1.5.20."""
ISTIOD = "istiod"
ML_PIPELINE = "ml-pipeline"
KATIB_CONTROLLER = "katib-controller"

METACONTROLLER_IMAGE = (
    f"ghcr.io/metacontroller/metacontroller:v{versions.pin('METACONTROLLER_IMAGE_VERSION')}"
)
ISTIOD_IMAGE = f"docker.io/istio/pilot:{versions.pin('ISTIO_VERSION')}"
"""istio-discovery's ``image: pilot`` (manifests/charts/istio-control/istio-discovery/values.yaml) on the
release hub docker.io/istio."""
ML_PIPELINE_IMAGE = "ghcr.io/kubeflow/kfp-api-server:2.4.1"
"""kubeflow/pipelines manifests/kustomize/base/pipeline/kustomization.yaml@2.4.1 (``newTag: 2.4.1``)."""
KATIB_IMAGE = f"ghcr.io/kubeflow/katib/katib-controller:v{versions.pin('KATIB_VERSION')}"
"""kubeflow/katib manifests/v1beta1/components/controller/controller.yaml@v0.19.0."""

KFP_WITHOUT_TOKENS = "gcr.io/ml-pipeline/api-server:1.5.0"
"""KFP 1.5, before token support (1.7), under the image name KFP 1.x's
manifests/kustomize/base/pipeline/kustomization.yaml gives its API server."""
ISTIO_WITHOUT_POLICIES = "docker.io/istio/pilot:1.5.10"
"""Istio 1.5: ServiceRoleBinding, no AuthorizationPolicy (e2e/istio-legacy runs that release)."""
ISTIO_WITHOUT_APPEND_ACTION = "docker.io/istio/pilot:1.14.6"
"""Istio 1.14: Envoy 1.22, before HeaderValueOption's append_action (Envoy 1.23, Istio 1.15)."""
OLD_KATIB = "gcr.io/kubeflow-images-public/katib/v1alpha3/katib-controller:v0.8.0"
"""Katib 0.8, older than the compatibility table's v0.9, as Kubeflow 1.0 pinned it:
kubeflow/manifests katib/katib-controller/base/kustomization.yaml@v1.0.0."""
OLD_METACONTROLLER = "metacontroller/metacontroller:v0.3.0"
"""What Kubeflow up to 1.4 ran: kubeflow/manifests metacontroller/base/stateful-set.yaml@v1.0.0 and
apps/pipeline/upstream/third-party/metacontroller/base/stateful-set.yaml@v1.4.0."""

# (kind, name, namespace, image)
_WORKLOADS = (
    ("StatefulSet", METACONTROLLER, METACONTROLLER, METACONTROLLER_IMAGE),
    ("Deployment", ISTIOD, "istio-system", ISTIOD_IMAGE),
    ("Deployment", ML_PIPELINE, "kubeflow", ML_PIPELINE_IMAGE),
    ("Deployment", KATIB_CONTROLLER, "kubeflow", KATIB_IMAGE),
)


def _workload(kind: str, name: str, namespace: str, image: str) -> Document:
    labels = {"app.kubernetes.io/name": name}
    pod_spec: dict[str, Any] = {"containers": [{"name": name, "image": image}]}
    spec: dict[str, Any] = {"replicas": 0, "selector": {"matchLabels": labels}}
    if kind == "StatefulSet":
        pod_spec["serviceAccountName"] = METACONTROLLER
        spec |= {"replicas": 1, "serviceName": ""}
    spec["template"] = {"metadata": {"labels": labels}, "spec": pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def stand_ins() -> list[Document]:
    """The workloads, their namespaces and Metacontroller's service account, to apply."""
    namespaces = sorted({namespace for *_, namespace, _ in _WORKLOADS})
    return [
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": METACONTROLLER, "namespace": METACONTROLLER},
        },
        *(_workload(*w) for w in _WORKLOADS),
    ]


def _where(name: str) -> tuple[str, str]:
    kind, namespace = next((k, ns) for k, n, ns, _ in _WORKLOADS if n == name)
    return kind.lower(), namespace


def mark_ready(kubectl: Kubectl, ready: int = 1) -> None:
    """Metacontroller's StatefulSet reports ``ready`` replicas, as its controller would with running Pods."""
    status = {"status": {"replicas": 1, "readyReplicas": ready, "availableReplicas": ready}}
    kubectl.run(
        "patch",
        "statefulset",
        METACONTROLLER,
        "-n",
        METACONTROLLER,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def set_image(kubectl: Kubectl, name: str, image: str) -> None:
    kind, namespace = _where(name)
    op = {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}
    kubectl.run("patch", kind, name, "-n", namespace, "--type=json", "-p", json.dumps([op]))


def set_environment(kubectl: Kubectl, name: str, environment: dict[str, str] | None) -> None:
    """The container's ``env`` (None: none at all, as applied; nothing to remove is no error)."""
    kind, namespace = _where(name)
    path = "/spec/template/spec/containers/0/env"
    if environment is None:
        workload = kubectl("get", kind, name, "-n", namespace)
        if "env" not in workload["spec"]["template"]["spec"]["containers"][0]:
            return
        op: dict[str, Any] = {"op": "remove", "path": path}
    else:
        op = {"op": "add", "path": path, "value": [{"name": k, "value": v} for k, v in environment.items()]}
    kubectl.run("patch", kind, name, "-n", namespace, "--type=json", "-p", json.dumps([op]))


def register_node(kubectl: Kubectl, name: str, kubelet_version: str) -> None:
    """A Node as a kubelet of that version registers it (no Pod is ever scheduled there: not Ready)."""
    kubectl.apply([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}])
    status = {"status": {"nodeInfo": {"kubeletVersion": kubelet_version}}}
    kubectl.run("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def delete(kubectl: Kubectl, *names: str) -> None:
    """The named workloads, or all of them with the namespaces only they use (``kubeflow`` stays: other
    tests share it)."""
    for name in names or tuple(n for _, n, _, _ in _WORKLOADS):
        kind, namespace = _where(name)
        kubectl.run("delete", kind, name, "-n", namespace, "--ignore-not-found")
    if not names:
        for namespace in (METACONTROLLER, "istio-system"):
            kubectl.run("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
