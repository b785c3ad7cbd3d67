"""One disruption under the steady admission load, tallied by the load and by kube-apiserver."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from e2e.cluster import apiserver_metrics
from e2e.cluster.cluster import Cluster
from e2e.cluster.load import Admission, Load, summary

RATE = 10.0
WARM_UP = 3.0
SETTLE = 12.0
"""After the disruption: longer than a stopping Pod's drain, so that its end is inside the count."""


@dataclass(frozen=True)
class Tally:
    admissions: list[Admission]
    client: dict[str, int]
    apiserver: dict[str, float]
    seconds: float

    def figures(self) -> dict[str, Any]:
        problems = [a.detail for a in self.admissions if a.outcome != "mutated"]
        return {
            "client": self.client,
            "apiserver": self.apiserver,
            "seconds": round(self.seconds, 1),
            "examples": problems[:3],
        }

    @property
    def refused(self) -> int:
        """Admissions that did not get our change, by whichever count is higher."""
        by_client = self.client["refused"] + self.client["unmutated"]
        by_apiserver = int(self.apiserver["calling_webhook_error"] + self.apiserver["fail_open"])
        return max(by_client, by_apiserver)


def apiserver_failures(cluster: Cluster) -> dict[str, float]:
    return apiserver_metrics.webhook_failures(cluster.kubectl.run("get", "--raw", "/metrics").stdout)


def under_load(
    cluster: Cluster,
    namespaces: list[str],
    trials: Mapping[str, Mapping[str, Any]],
    disrupt: Callable[[], None],
    *,
    rate: float = RATE,
    settle: float = SETTLE,
) -> Tally:
    """Run ``disrupt`` while creating trial Pods, trial Jobs and notebook Pods at ``rate`` per second."""
    before = apiserver_failures(cluster)
    began = time.monotonic()
    load = Load(cluster.api, namespaces, trials, rate=rate).start()
    try:
        time.sleep(WARM_UP)
        disrupt()
        time.sleep(settle)
    finally:
        admissions = load.stop()
    failures = apiserver_metrics.increase(before, apiserver_failures(cluster))
    return Tally(admissions, summary(admissions), failures, time.monotonic() - began)
