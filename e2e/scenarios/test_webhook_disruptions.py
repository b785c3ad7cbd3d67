"""A webhook Pod deleted, a webhook container killed hard, the webhook drained off its node: under load.

Deleting a Pod goes the way a rollout does (SIGTERM, drain): nothing may be refused. A hard kill gives no
drain: what it loses is measured, and bounded by what reaches that replica before the cluster notices. A
drain evicts through the eviction API, where the PodDisruptionBudget keeps one replica serving.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.cluster import product
from e2e.cluster.cluster import Cluster
from e2e.cluster.node import NODE_NAME
from e2e.framework.processes import eventually
from e2e.scenarios.conftest import PROFILES, record
from e2e.scenarios.under_load import RATE, under_load

pytestmark = pytest.mark.cluster

NOTICE_SECONDS = 2.0
"""How soon the cluster stops sending to a killed container: the kubelet notices it at its next relist
(every second), reports the Pod not ready, the EndpointSlice follows and kube-apiserver's informer sees it.
Until then kube-apiserver still sends that replica reviews, which fail with `connection refused`
(measured: sent 0.04-1.02 s after the kill)."""


def test_a_deleted_pod_refuses_no_admission(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]]
) -> None:
    def delete_one() -> None:
        victim = product.webhook_pods(cluster)[0]["metadata"]["name"]
        cluster.kubectl.run("delete", "pod", victim, "-n", product.WEBHOOK_NAMESPACE, "--wait=false")
        eventually(
            lambda: product.all_replicas_ready(cluster),
            timeout=120,
            what="the webhook's replicas ready again",
        )

    tally = under_load(cluster, list(PROFILES), webhook, delete_one)
    record(request, {"routing": cluster.routing, **tally.figures()})
    assert tally.refused == 0 and tally.client["failed"] == 0, tally.figures()


def test_a_hard_killed_container_loses_at_most_what_it_had_in_flight(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]]
) -> None:
    assert cluster.node is not None
    node = cluster.node
    killed_at: list[float] = []

    def kill_one() -> None:
        pod = product.webhook_pods(cluster)[0]
        [status] = pod["status"]["containerStatuses"]
        container = status["containerID"].removeprefix("containerd://")
        killed_at.append(time.monotonic())
        node.ctr("tasks", "kill", "--signal", "SIGKILL", container)
        eventually(
            lambda: (
                product.all_replicas_ready(cluster)
                and product.webhook_pods(cluster)[0]["status"]["containerStatuses"][0]["restartCount"] > 0
            ),
            timeout=120,
            what="the killed container restarted and ready",
        )

    tally = under_load(cluster, list(PROFILES), webhook, kill_one)
    lost = [a for a in tally.admissions if a.outcome != "mutated"]
    after_kill = [round(a.sent - killed_at[0], 2) for a in lost]
    record(request, {"routing": cluster.routing, "lost_seconds_after_kill": after_kill, **tally.figures()})
    # No drain is possible: what is lost is what reached the dead replica before the cluster noticed, at
    # most its share of the load over that time, and nothing after.
    replicas = len(product.webhook_pods(cluster))
    assert all(-NOTICE_SECONDS <= t <= NOTICE_SECONDS for t in after_kill), after_kill
    assert tally.refused <= RATE * NOTICE_SECONDS / replicas, tally.figures()
    assert tally.client["failed"] == 0, tally.figures()


def test_a_drain_keeps_one_replica_serving_and_refuses_no_admission(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]]
) -> None:
    drained: list[str] = []

    def drain() -> None:
        # One node: the evicted replica's successor cannot be scheduled until it is uncordoned, so the
        # PodDisruptionBudget (minAvailable 1) refuses the second eviction and the drain times out.
        result = cluster.kubectl.run(
            "drain",
            NODE_NAME,
            f"--pod-selector={product.WEBHOOK_SELECTOR}",
            "--delete-emptydir-data",
            "--ignore-daemonsets",
            "--timeout=25s",
            check=False,
            timeout=60,
        )
        drained.append(result.stdout + result.stderr)
        ready = sum(
            1
            for pod in product.webhook_pods(cluster)
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
            )
        )
        drained.append(f"ready while cordoned: {ready}")
        cluster.kubectl.run("uncordon", NODE_NAME)
        eventually(
            lambda: product.all_replicas_ready(cluster),
            timeout=120,
            what="the webhook's replicas ready again",
        )

    tally = under_load(cluster, list(PROFILES), webhook, drain)
    record(request, {"routing": cluster.routing, "drain": drained[-1], **tally.figures()})
    assert "disruption budget" in drained[0], drained[0][-2000:]
    assert drained[1] == "ready while cordoned: 1", drained
    assert tally.refused == 0 and tally.client["failed"] == 0, tally.figures()
