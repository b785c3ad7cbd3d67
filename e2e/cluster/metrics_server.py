"""metrics-server, what a HorizontalPodAutoscaler on CPU reads: from its own ``manifests/overlays/test``
(read from its Go module; that overlay adds ``--kubelet-insecure-tls``), its image retargeted to one holding
the binary ``build-control-plane.sh cluster`` built, on the node's network.

The kubelet serves on 127.0.0.1 only (its ``Hostname`` address), so metrics-server runs on the host
network, listens on the node's address (not on every interface) and reads the kubelet by that address.
Each change to its Deployment is guarded by a JSON Patch ``test`` of what the overlay had, so a new
release that moves an argument fails here rather than running as something else.
"""

from __future__ import annotations

from typing import Any

from e2e.cluster.node import IMAGE_REGISTRY, NODE_IP
from e2e.framework import oci

UPSTREAM_IMAGE = "gcr.io/k8s-staging-metrics-server/metrics-server"
"""The image name of metrics-server v0.8.0 ``manifests/base/deployment.yaml``."""
BINARY_PATH = "/metrics-server"
"""Where its release image has the binary, its entrypoint (v0.8.0 ``Dockerfile``)."""
NAMESPACE = "kube-system"
API_SERVICE = "v1beta1.metrics.k8s.io"
OVERLAY = ("manifests", "overlays", "test")


def image_layer(binary: Any) -> oci.Layer:
    return oci.Layer(files={BINARY_PATH: binary}, directories=["/tmp"])


def image_config() -> oci.ImageConfig:
    return oci.ImageConfig(entrypoint=[BINARY_PATH])


def image_reference(version: str) -> str:
    return f"{IMAGE_REGISTRY}/metrics-server:v{version}"


def deployment_patch(port: int) -> list[dict[str, Any]]:
    """Host network, the node's address and a free port instead of 10250 (the kubelet's usual port), the
    kubelet by its ``Hostname`` address. Argument indexes: v0.8.0 ``manifests/base/deployment.yaml``."""
    container = "/spec/template/spec/containers/0"
    address_types = "--kubelet-preferred-address-types="
    replaced = {
        1: ("--secure-port=10250", f"--secure-port={port}"),
        2: (f"{address_types}InternalIP,ExternalIP,Hostname", f"{address_types}Hostname"),
    }
    operations: list[dict[str, Any]] = []
    for index, (was, now) in replaced.items():
        operations += [
            {"op": "test", "path": f"{container}/args/{index}", "value": was},
            {"op": "replace", "path": f"{container}/args/{index}", "value": now},
        ]
    return [
        *operations,
        {"op": "add", "path": f"{container}/args/-", "value": f"--bind-address={NODE_IP}"},
        {"op": "test", "path": f"{container}/ports/0/containerPort", "value": 10250},
        {"op": "replace", "path": f"{container}/ports/0/containerPort", "value": port},
        {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True},
    ]
