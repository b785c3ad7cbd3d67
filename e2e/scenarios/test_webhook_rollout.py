"""Rolling the webhook three times in a row while trial Pods, trial Jobs and notebook Pods keep coming
refuses no admission: counted by the client and by kube-apiserver itself."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.cluster import product
from e2e.cluster.cluster import Cluster
from e2e.scenarios.conftest import PROFILES, record
from e2e.scenarios.under_load import RATE, under_load

pytestmark = pytest.mark.cluster

ROLLOUTS = 3


def test_rollout_restarts_refuse_no_admission(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]]
) -> None:
    rollouts: list[float] = []

    def roll_three_times() -> None:
        for _ in range(ROLLOUTS):
            rollouts.append(round(product.rollout_restart(cluster, product.WEBHOOK_DEPLOYMENT), 1))

    tally = under_load(cluster, list(PROFILES), webhook, roll_three_times)
    record(request, {"routing": cluster.routing, "rollout_seconds": rollouts, **tally.figures()})
    assert tally.client["attempted"] >= RATE * 20, "the load did not run long enough"
    assert tally.refused == 0, tally.figures()
    assert tally.client["failed"] == 0, tally.figures()
