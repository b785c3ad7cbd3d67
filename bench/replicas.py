"""``python -m bench.replicas [--seconds N] [--clients N] [--routing clusterip,endpoint]``: the webhook
behind its Service with 1, 2 and 3 replicas, side by side in one run, on the local cluster (root; the
image from ``just image`` and the cluster's programs from ``e2e/build-control-plane.sh all``).

Per routing mode (how kube-apiserver reaches the Service: its ClusterIP through kube-proxy, or a ready
endpoint it picks itself) and replica count: trial Pods created in a closed loop by ``--clients`` clients
for ``--seconds``, in a profile namespace (the webhook is called) and, alternating, in a namespace it does
not select; reported as admissions per second, the added p50/p99 of ``create pod`` against that baseline,
ratios to one replica, and how the reviews spread over the replicas (each Pod's own review count).
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from bench.stats import percentile, table
from e2e.cluster import product
from e2e.cluster.cluster import Cluster
from e2e.cluster.load import Load
from e2e.framework import objects

PROFILE, PLAIN = "bench-profile", "bench-plain"
SELECTOR = f"app.kubernetes.io/name={product.WEBHOOK_DEPLOYMENT}"
REVIEWS = "kfext_webhook_request_duration_seconds_count"


def reviews_by_pod(cluster: Cluster) -> dict[str, float]:
    """Each webhook Pod's review count, read from its own /metrics on the Pod network."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # the self-managed CA; only the count is read
    # Straight to the Pod network, never through a proxy the environment may name.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=unverified)
    )
    counts = {}
    pods = cluster.kubectl("get", "pods", "-n", product.WEBHOOK_NAMESPACE, "-l", SELECTOR)["items"]
    for pod in pods:
        if not pod["status"].get("podIP") or pod["metadata"].get("deletionTimestamp"):
            continue
        url = f"https://{pod['status']['podIP']}:8443/metrics"
        with opener.open(url, timeout=5) as response:
            text = response.read().decode()
        counts[pod["metadata"]["name"]] = sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(REVIEWS)
        )
    return counts


def scale(cluster: Cluster, replicas: int) -> None:
    cluster.kubectl.run(
        "scale",
        f"deployment/{product.WEBHOOK_DEPLOYMENT}",
        "-n",
        product.WEBHOOK_NAMESPACE,
        f"--replicas={replicas}",
    )
    product.rollout_status(cluster, product.WEBHOOK_DEPLOYMENT)
    deadline = time.monotonic() + 60
    while len(reviews_by_pod(cluster)) != replicas and time.monotonic() < deadline:
        time.sleep(1)  # old Pods draining after a scale-down
    product.wait_until_mutating(cluster, PROFILE)


def closed_loop(
    cluster: Cluster, namespace: str, clients: int, seconds: float
) -> tuple[float, list[float], int]:
    """Admissions per second, sorted latencies (s) and how many were not created as expected."""
    load = Load(cluster.api, [namespace], {}, rate=None, workers=clients, kinds=("trial-pod",)).start()
    time.sleep(seconds)
    admissions = load.stop()
    wrong = sum(1 for a in admissions if a.outcome not in ("mutated", "unmutated"))
    return len(admissions) / seconds, sorted(a.seconds for a in admissions), wrong


def measure(cluster: Cluster, replicas: Sequence[int], clients: int, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for count in replicas:
        scale(cluster, count)
        closed_loop(cluster, PROFILE, clients, 3)  # warm every connection and replica
        before = reviews_by_pod(cluster)
        rate, latencies, wrong = closed_loop(cluster, PROFILE, clients, seconds)
        after = reviews_by_pod(cluster)
        base_rate, base, _ = closed_loop(cluster, PLAIN, clients, seconds)
        spread = sorted((after[p] - before.get(p, 0.0) for p in after), reverse=True)
        total = sum(spread) or 1.0
        rows.append(
            {
                "replicas": count,
                "admissions_per_s": rate,
                "baseline_per_s": base_rate,
                "added_p50_ms": (percentile(latencies, 0.5) - percentile(base, 0.5)) * 1000,
                "added_p99_ms": (percentile(latencies, 0.99) - percentile(base, 0.99)) * 1000,
                "spread": [round(share / total, 2) for share in spread],
                "errors": wrong,
            }
        )
    return rows


def report(routing: str, rows: list[dict[str, Any]]) -> str:
    one = rows[0]
    return f"routing: {routing}\n" + table(
        [
            "replicas",
            "admissions/s",
            "ratio to 1",
            "no-webhook /s",
            "added p50 ms",
            "added p99 ms",
            "reviews by replica",
            "errors",
        ],
        [
            [
                r["replicas"],
                r["admissions_per_s"],
                r["admissions_per_s"] / one["admissions_per_s"],
                r["baseline_per_s"],
                r["added_p50_ms"],
                r["added_p99_ms"],
                " / ".join(f"{s:.2f}" for s in r["spread"]),
                r["errors"],
            ]
            for r in rows
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--routing", default="clusterip,endpoint")
    args = parser.parse_args(argv)
    for routing in args.routing.split(","):
        with Cluster(aggregator_routing=routing == "endpoint", dns=False) as cluster:
            product.import_image(cluster)
            product.create_profiles(cluster, [PROFILE])
            for obj in objects.profile_objects(PLAIN, "nobody@example.com")[1:]:
                obj["metadata"].setdefault("labels", {}).pop("app.kubernetes.io/part-of", None)
                cluster.kubectl("create", "-f", "-", stdin=json.dumps(obj))
            product.deploy_webhook(cluster)
            rows = measure(cluster, [1, 2, 3], args.clients, args.seconds)
        print(report(routing, rows), flush=True)
        print(json.dumps({"routing": routing, "rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
