"""A cluster per routing mode (pytest groups the scenarios by it), the product's webhook in it, profile
namespaces for the load. Each scenario leaves every replica ready for the next."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import product
from e2e.cluster.api import Api
from e2e.cluster.children import ChildrenWatch
from e2e.cluster.cluster import Cluster
from e2e.framework.processes import eventually
from e2e.framework.reporting import terminal_line
from hooks.identity import MODE_LABEL

ROUTING_MODES = {"clusterip": False, "endpoint": True}
"""kube-apiserver reaching a webhook Service through its ClusterIP (kube-proxy; the default), or a random
ready endpoint of it (``--enable-aggregator-routing=true``)."""
PROFILES = ("team-a", "team-b", "team-c")


def routing_modes() -> list[str]:
    """``E2E_ROUTING`` limits the modes (comma-separated), e.g. to keep a CI run short."""
    chosen = os.environ.get("E2E_ROUTING", ",".join(ROUTING_MODES)).split(",")
    unknown = set(chosen) - set(ROUTING_MODES)
    if unknown:
        raise pytest.UsageError(f"E2E_ROUTING: unknown routing modes {sorted(unknown)}")
    return chosen


@pytest.fixture(scope="session", params=routing_modes())
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    keep = os.environ.get("E2E_KEEP_RUN_DIR", "") not in ("", "0")
    with Cluster(aggregator_routing=ROUTING_MODES[request.param], keep_run_dir=keep) as running:
        yield running


@pytest.fixture(scope="session")
def webhook(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The webhook deployed from the image; profile namespaces with their Trials (returned by namespace)."""
    product.import_image(cluster)
    trials = product.create_profiles(cluster, PROFILES)
    product.deploy_webhook(cluster)
    product.wait_until_mutating(cluster, PROFILES[0])
    return trials


@pytest.fixture(scope="session")
def hooks(cluster: Cluster, webhook: dict[str, dict[str, Any]]) -> Api:
    """Metacontroller from its release manifests and ``metacontroller/`` from the image; the existing profile
    namespaces decorated."""
    product.deploy_hooks(cluster)
    api = cluster.api
    watch = ChildrenWatch(api)
    for name in PROFILES:
        watch.track(name)
    watch.start()
    deadline = time.monotonic() + 120
    while watch.report()["never_converged"] and time.monotonic() < deadline:
        time.sleep(1)
    report = watch.stop()
    assert report["never_converged"] == 0, f"Metacontroller did not decorate the profile namespaces: {report}"
    # The label is Metacontroller's update of the Namespace itself: only what metacontroller/ ships allows it.
    eventually(
        lambda: all(
            (cluster.kubectl.get("namespace", name) or {})
            .get("metadata", {})
            .get("labels", {})
            .get(MODE_LABEL)
            == "header"
            for name in PROFILES
        ),
        timeout=60,
        what=f"every profile namespace labelled {MODE_LABEL}=header",
    )
    return api


def record(request: pytest.FixtureRequest, figures: dict[str, Any]) -> None:
    """A scenario's figures: on the terminal (outside pytest's capture) and, with ``E2E_RESULTS``, appended
    to that file as one JSON line."""
    line = json.dumps({"test": request.node.name, **figures}, sort_keys=True)
    results = os.environ.get("E2E_RESULTS")
    if results:
        with Path(results).open("a") as handle:
            handle.write(line + "\n")
    terminal_line(request, f"scenario: {line}")
