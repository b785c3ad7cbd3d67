"""What Metacontroller keeps for each profile namespace, checked every second while profile namespaces come
and go: the AuthorizationPolicy in the Kubeflow namespace and the EnvoyFilter in the namespace (header mode).

A namespace is ``converged`` once both exist; from then on, a check that finds one missing while the
namespace still exists counts as ``lost``: the hooks or Metacontroller went away and a sync deleted what a
user relies on. Namespaces are created (with their Profile) and deleted at a steady pace by ``Churn``.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from e2e.cluster.api import Api
from e2e.framework import objects
from hooks.istio import ENVOY_FILTER_NAME, authorization_name

AUTHORIZATION_POLICIES = "/apis/security.istio.io/v1beta1/namespaces/kubeflow/authorizationpolicies"
ENVOY_FILTERS = "/apis/networking.istio.io/v1alpha3/envoyfilters"


def present_children(
    policies: Iterable[Mapping[str, Any]], filters: Iterable[Mapping[str, Any]]
) -> dict[str, int]:
    """Per user namespace, how many of its two children exist (pure): the policy's name and the filter's
    namespace say whose they are."""
    counts: dict[str, int] = {}
    prefix = authorization_name("")
    for policy in policies:
        name = policy["metadata"]["name"]
        if name.startswith(prefix):
            counts[name.removeprefix(prefix)] = counts.get(name.removeprefix(prefix), 0) + 1
    for envoy_filter in filters:
        if envoy_filter["metadata"]["name"] == ENVOY_FILTER_NAME:
            namespace = envoy_filter["metadata"]["namespace"]
            counts[namespace] = counts.get(namespace, 0) + 1
    return counts


@dataclass
class Tracked:
    created: float
    converged: float | None = None
    lost: int = 0
    deleted: float | None = None


@dataclass
class ChildrenWatch:
    """Checks every profile namespace's children every ``interval`` seconds until stopped."""

    api: Api
    interval: float = 1.0
    namespaces: dict[str, Tracked] = field(default_factory=dict)
    checks: int = 0
    errors: list[str] = field(default_factory=list)
    """Checks that could not read the children (kube-apiserver did not answer)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def track(self, namespace: str) -> None:
        with self._lock:
            self.namespaces[namespace] = Tracked(time.monotonic())

    def untrack(self, namespace: str) -> None:
        """The namespace is being deleted: its children go with it, and are no longer counted."""
        with self._lock:
            self.namespaces[namespace].deleted = time.monotonic()

    def start(self) -> ChildrenWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        return self.report()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                policies = self.api.json("GET", AUTHORIZATION_POLICIES)
                filters = self.api.json("GET", ENVOY_FILTERS)
            except (OSError, http.client.HTTPException, ValueError) as error:
                self.errors.append(repr(error))
                continue
            counts = present_children(policies["items"], filters["items"])
            now = time.monotonic()
            with self._lock:
                self.checks += 1
                for name, tracked in self.namespaces.items():
                    if tracked.deleted is not None:
                        continue
                    complete = counts.get(name, 0) == 2
                    if complete and tracked.converged is None:
                        tracked.converged = now
                    elif not complete and tracked.converged is not None:
                        tracked.lost += 1

    def report(self) -> dict[str, Any]:
        with self._lock:
            tracked = list(self.namespaces.values())
        convergence = sorted(t.converged - t.created for t in tracked if t.converged is not None)
        live = [t for t in tracked if t.deleted is None]
        return {
            "checks": self.checks,
            "check_errors": len(self.errors),
            "namespaces": len(tracked),
            "lost_checks": sum(t.lost for t in tracked),
            "never_converged": sum(1 for t in live if t.converged is None),
            "converge_seconds_max": round(convergence[-1], 2) if convergence else None,
            "converge_seconds_median": round(convergence[len(convergence) // 2], 2) if convergence else None,
        }


@dataclass
class Churn:
    """Creates a profile namespace every ``period`` seconds and deletes the oldest beyond ``keep``."""

    api: Api
    watch: ChildrenWatch
    prefix: str
    period: float = 3.0
    keep: int = 4
    created: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Churn:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        return self.errors

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            name = f"{self.prefix}-{number}"
            number += 1
            for obj in objects.profile_objects(name, f"{name}@example.com"):
                self._create(obj)
            self.watch.track(name)
            self.created.append(name)
            live = [n for n in self.created if self.watch.namespaces[n].deleted is None]
            for old in live[: max(0, len(live) - self.keep)]:
                self.watch.untrack(old)
                self._call("DELETE", f"/api/v1/namespaces/{old}")
                self._call("DELETE", f"/apis/kubeflow.org/v1/profiles/{old}")
            self._stop.wait(self.period)

    def _create(self, obj: Mapping[str, Any]) -> None:
        kind, namespace = obj["kind"], obj["metadata"].get("namespace")
        path = {
            "Profile": "/apis/kubeflow.org/v1/profiles",
            "Namespace": "/api/v1/namespaces",
            "ServiceAccount": f"/api/v1/namespaces/{namespace}/serviceaccounts",
        }[kind]
        self._call("POST", path, obj)

    def _call(self, method: str, path: str, body: Any = None) -> None:
        try:
            status, answer = self.api.call(method, path, body)
        except (OSError, http.client.HTTPException) as error:
            self.errors.append(f"{method} {path}: {error!r}")
            return
        if status >= 300:
            self.errors.append(f"{method} {path}: {status} {answer[:200]!r}")
