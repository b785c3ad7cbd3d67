"""The shipped HorizontalPodAutoscaler (``webhook/autoscaling``) scales the webhook up under load and back
down after it, refusing no admission either way.

metrics-server runs from its own manifests; the HPA controller of kube-controller-manager reads it. The
load is heavy until the autoscaler has added replicas and they are ready, then steady while it removes
them again: every removed replica drains like a rolled one. The component's scale-down is shortened
here (a 30 s window, a Pod every 15 s instead of 300 s and a Pod a minute) so that the way down fits in
a scenario; each step down is the same as the shipped one's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cluster import apiserver_metrics, product
from e2e.cluster.cluster import Cluster
from e2e.cluster.load import Load, summary
from e2e.framework.processes import eventually
from e2e.scenarios.conftest import PROFILES, record
from e2e.scenarios.under_load import RATE, SETTLE, Tally, apiserver_failures

pytestmark = pytest.mark.cluster

HEAVY_RATE = 200.0
HEAVY_WORKERS = 12
MIN_REPLICAS = 2
SCALE_UP_WITHIN = 240.0
SCALE_DOWN_WITHIN = 300.0
FASTER_SCALE_DOWN = [
    {"op": "test", "path": "/spec/behavior/scaleDown/stabilizationWindowSeconds", "value": 300},
    {"op": "replace", "path": "/spec/behavior/scaleDown/stabilizationWindowSeconds", "value": 30},
    {"op": "test", "path": "/spec/behavior/scaleDown/policies/0/periodSeconds", "value": 60},
    {"op": "replace", "path": "/spec/behavior/scaleDown/policies/0/periodSeconds", "value": 15},
]


class ReplicaLog:
    """The Deployment's replicas (wanted, ready) and the CPU utilization the autoscaler last read, every
    second, kept when they change."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.began = time.monotonic()
        self.changes: list[tuple[float, int, int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ReplicaLog:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            deployment = self.cluster.kubectl.get(
                "deployment", product.WEBHOOK_DEPLOYMENT, product.WEBHOOK_NAMESPACE
            )
            if deployment is None:
                continue
            now = (
                deployment["spec"]["replicas"],
                deployment["status"].get("readyReplicas", 0),
                utilization(self.cluster),
            )
            if not self.changes or self.changes[-1][1:] != now:
                self.changes.append((round(time.monotonic() - self.began, 1), *now))

    @property
    def highest(self) -> int:
        return max((wanted for _, wanted, _, _ in self.changes), default=0)

    @property
    def at_minimum(self) -> bool:
        return bool(self.changes) and self.changes[-1][1:3] == (MIN_REPLICAS, MIN_REPLICAS)


@pytest.fixture
def autoscaled(cluster: Cluster, webhook: dict[str, dict[str, Any]]) -> Iterator[None]:
    """metrics-server, and the webhook applied again with the autoscaling component; afterwards without
    it, at its shipped replicas."""
    cluster.deploy_metrics_server()
    hpa = {"kind": "HorizontalPodAutoscaler", "name": product.WEBHOOK_DEPLOYMENT}
    product.deploy_webhook(cluster, components=["autoscaling"], patches=[(hpa, FASTER_SCALE_DOWN)])
    eventually(
        lambda: product.all_replicas_ready(cluster) and hpa_reads_metrics(cluster),
        timeout=SCALE_UP_WITHIN,
        what="the autoscaler reading the webhook's CPU",
    )
    yield
    cluster.kubectl.run(
        "delete", "horizontalpodautoscaler", product.WEBHOOK_DEPLOYMENT, "-n", product.WEBHOOK_NAMESPACE
    )
    product.deploy_webhook(cluster)


def utilization(cluster: Cluster) -> int | None:
    """The average CPU utilization (% of the request) the autoscaler last read, if any."""
    hpa = cluster.kubectl.get("hpa", product.WEBHOOK_DEPLOYMENT, product.WEBHOOK_NAMESPACE)
    for metric in (hpa or {}).get("status", {}).get("currentMetrics") or []:
        value = metric.get("resource", {}).get("current", {}).get("averageUtilization")
        if value is not None:
            return int(value)
    return None


def hpa_reads_metrics(cluster: Cluster) -> bool:
    return utilization(cluster) is not None


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("autoscaled")
def test_the_autoscaler_scales_up_and_down_refusing_no_admission(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]]
) -> None:
    namespaces = list(PROFILES)
    before = apiserver_failures(cluster)
    began = time.monotonic()
    with ReplicaLog(cluster) as replicas:
        heavy = Load(cluster.api, namespaces, webhook, rate=HEAVY_RATE, workers=HEAVY_WORKERS).start()
        try:
            eventually(
                lambda: replicas.highest > MIN_REPLICAS and product.all_replicas_ready(cluster),
                timeout=SCALE_UP_WITHIN,
                what="the autoscaler adding ready replicas",
            )
        finally:
            admissions = heavy.stop()
        steady = Load(cluster.api, namespaces, webhook, rate=RATE).start()
        try:
            eventually(
                lambda: replicas.at_minimum and product.all_replicas_ready(cluster),
                timeout=SCALE_DOWN_WITHIN,
                what="the autoscaler back at its minimum",
                interval=1.0,
            )
            time.sleep(SETTLE)
        finally:
            admissions += steady.stop()
    failures = apiserver_metrics.increase(before, apiserver_failures(cluster))
    tally = Tally(admissions, summary(admissions), failures, time.monotonic() - began)
    record(request, {"routing": cluster.routing, "replicas": replicas.changes, **tally.figures()})
    assert replicas.highest > MIN_REPLICAS, replicas.changes
    assert tally.refused == 0 and tally.client["failed"] == 0, tally.figures()
