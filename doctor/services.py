"""Whether a Service that kube-apiserver or Metacontroller calls can answer: it exists and one of its
EndpointSlices has a ready endpoint. A Service without one refuses every call, whatever its Pods say."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doctor.snapshot import Snapshot, find, labels_of, namespace_of

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _ready(endpoint: Mapping[str, Any]) -> bool:
    # An absent `ready` means unknown, which consumers must treat as ready (discovery.k8s.io/v1).
    return (endpoint.get("conditions") or {}).get("ready") is not False and bool(endpoint.get("addresses"))


def ready_endpoints(snapshot: Snapshot, namespace: str, name: str) -> int:
    return sum(
        _ready(endpoint)
        for slice_ in snapshot.endpoint_slices
        if namespace_of(slice_) == namespace and labels_of(slice_).get(SERVICE_NAME_LABEL) == name
        for endpoint in slice_.get("endpoints") or []
    )


def problem(snapshot: Snapshot, namespace: str, name: str) -> str | None:
    """Why calls to the Service fail, or None when it has a ready endpoint."""
    if find(snapshot.services, name, namespace) is None:
        return f"Service {namespace}/{name} does not exist"
    if not ready_endpoints(snapshot, namespace, name):
        return f"Service {namespace}/{name} has no ready endpoint"
    return None
