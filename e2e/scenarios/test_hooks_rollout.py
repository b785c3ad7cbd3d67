"""Rolling the hooks, then Metacontroller, three times each while profile namespaces come and go and
admissions keep coming: no profile namespace loses a child, every new one gets its children."""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.cluster import apiserver_metrics, product
from e2e.cluster.api import Api
from e2e.cluster.children import ChildrenWatch, Churn
from e2e.cluster.cluster import Cluster
from e2e.cluster.load import Load, summary
from e2e.scenarios.conftest import PROFILES, record
from e2e.scenarios.under_load import apiserver_failures

pytestmark = pytest.mark.cluster

ROLLOUTS = 3
SETTLE = 15.0
CHURN_SECONDS = 20.0
"""At least this long of namespaces coming and going, however fast the rollouts are."""


@pytest.mark.parametrize(
    ("kind", "name", "namespace"),
    [
        ("deployment", product.HOOKS_DEPLOYMENT, product.WEBHOOK_NAMESPACE),
        ("statefulset", "metacontroller", "metacontroller"),
    ],
)
def test_rollouts_lose_no_child_and_refuse_no_admission(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    webhook: dict[str, dict[str, Any]],
    hooks: Api,
    kind: str,
    name: str,
    namespace: str,
) -> None:
    before = apiserver_failures(cluster)
    watch = ChildrenWatch(hooks)
    for profile in PROFILES:
        watch.track(profile)
    churn = Churn(hooks, watch, prefix=f"churn-{kind}")
    load = Load(hooks, PROFILES, webhook)
    began = time.monotonic()
    rollouts = []
    watch.start()
    churn.start()
    load.start()
    try:
        time.sleep(5)
        for _ in range(ROLLOUTS):
            rollouts.append(round(product.rollout_restart(cluster, name, namespace, kind), 1))
        time.sleep(max(0.0, began + CHURN_SECONDS - time.monotonic()))
    finally:
        # Namespaces stop coming first: every one then has the settling time to be decorated.
        churn_errors = churn.stop()
        time.sleep(SETTLE)
        admissions = load.stop()
        children = watch.stop()
    failures = apiserver_metrics.increase(before, apiserver_failures(cluster))
    counts = summary(admissions)
    record(
        request,
        {
            "routing": cluster.routing,
            "restarted": f"{kind}/{name}",
            "seconds": round(time.monotonic() - began, 1),
            "rollout_seconds": rollouts,
            "children": children,
            "client": counts,
            "apiserver": failures,
            "churn_errors": churn_errors[:3],
        },
    )
    assert children["lost_checks"] == 0, children
    assert children["never_converged"] == 0, children
    assert children["namespaces"] >= len(PROFILES) + 5, "too few namespaces came and went"
    assert not churn_errors, churn_errors[:3]
    assert counts["mutated"] == counts["attempted"], [a.detail for a in admissions if a.outcome != "mutated"][
        :3
    ]
    assert failures == {"calling_webhook_error": 0.0, "fail_open": 0.0}
