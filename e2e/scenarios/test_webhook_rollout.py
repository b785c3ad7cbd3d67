"""Rolling the webhook three times in a row while trial Pods, trial Jobs and notebook Pods keep coming
refuses no admission: counted by the client and by kube-apiserver itself."""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.cluster import apiserver_metrics, product
from e2e.cluster.cluster import Cluster
from e2e.cluster.load import Load, summary
from e2e.scenarios.conftest import PROFILES, record

pytestmark = pytest.mark.cluster

RATE = 10.0
ROLLOUTS = 3
SETTLE = 12.0
"""After the last rollout: longer than the old Pods' drain, so that their end is inside the count."""


def apiserver_failures(cluster: Cluster) -> dict[str, float]:
    return apiserver_metrics.webhook_failures(cluster.kubectl.run("get", "--raw", "/metrics").stdout)


def test_rollout_restarts_refuse_no_admission(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]]
) -> None:
    before = apiserver_failures(cluster)
    load = Load(
        cluster.plane.server, str(cluster.plane.ca.files.cert), cluster.admin, PROFILES, webhook, rate=RATE
    ).start()
    began = time.monotonic()
    rollouts = []
    try:
        time.sleep(3)
        for _ in range(ROLLOUTS):
            started = time.monotonic()
            cluster.kubectl.run(
                "rollout",
                "restart",
                f"deployment/{product.WEBHOOK_DEPLOYMENT}",
                "-n",
                product.WEBHOOK_NAMESPACE,
            )
            product.rollout_status(cluster, product.WEBHOOK_DEPLOYMENT)
            rollouts.append(round(time.monotonic() - started, 1))
        time.sleep(SETTLE)
    finally:
        admissions = load.stop()
    failures = apiserver_metrics.increase(before, apiserver_failures(cluster))
    counts = summary(admissions)
    problems = [a.detail for a in admissions if a.outcome != "mutated"]
    record(
        request,
        {
            "routing": cluster.routing,
            "seconds": round(time.monotonic() - began, 1),
            "rollout_seconds": rollouts,
            "client": counts,
            "apiserver": failures,
            "examples": problems[:3],
        },
    )
    assert counts["attempted"] >= RATE * 20, "the load did not run long enough"
    assert counts["refused"] == 0 and failures["calling_webhook_error"] == 0, problems[:5]
    assert counts["unmutated"] == 0 and failures["fail_open"] == 0, problems[:5]
    assert counts["failed"] == 0, problems[:5]
