"""One pure function per mutation: ``(object, config) -> Mutation``; no I/O, idempotent by construction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.config import Config
from webhook.patch import Mutation

MutationFunction = Callable[[Mapping[str, Any], Config], Mutation]

COLLECTOR_CONTAINERS = ("metrics-logger-and-collector", "metrics-collector")
"""Katib's metrics collector containers: StdOut/File ones, and TensorFlowEvent/Prometheus/Custom ones."""

PROXY_CONTAINER = "istio-proxy"
"""Istio's sidecar, as its injector names it (a container, or a native sidecar init container)."""

ISTIO_INJECT = "sidecar.istio.io/inject"
"""Label (Istio >= 1.10 webhook selection, preferred by istiod >= 1.12) and deprecated annotation."""


def spec_list(pod: Mapping[str, Any], field: str) -> list[Any]:
    """The Pod's ``spec.<field>`` (containers, initContainers) when it is a list, else an empty one."""
    spec = pod.get("spec")
    value = spec.get(field) if isinstance(spec, dict) else None
    return value if isinstance(value, list) else []


CONTAINERS = "/spec/containers"
"""The pointer to a Pod's containers: fixed keys that need no escaping, so paths below it are written
directly (``f"{CONTAINERS}/{index}/args"``), without ``pointer``'s per-token work."""
