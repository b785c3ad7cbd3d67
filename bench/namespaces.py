"""Many profile namespaces at once through real Metacontroller: how long until every one has its children.

The local control plane runs the shipped DecoratorController (``metacontroller/``), localized to one
local hooks process. N Profiles and Namespaces are created in one server-side apply; the run then
polls the AuthorizationPolicies in ``kubeflow`` and the EnvoyFilters and reports the time until 50%,
90% and 100% of the namespaces have both. Target: 1,000 namespaces complete within 60 s.

``python -m bench.namespaces [--count 1000]`` (not part of ``python -m bench``: it takes minutes)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import stats
from bench.common import progress
from e2e.cluster.controlplane import REPO_ROOT, ControlPlane
from e2e.framework.objects import profile_objects
from hooks.istio import ENVOY_FILTER_NAME, authorization_name

TARGET_SECONDS = 60.0


def _names(kubectl: Any, resource: str, namespace: str | None = None) -> set[str]:
    scope = ["-n", namespace] if namespace else ["-A"]
    listed = kubectl.run(
        "get",
        resource,
        *scope,
        "-o",
        'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}',
    )
    return set(listed.stdout.split())


def run(count: int, timeout: float) -> dict[str, Any]:
    names = [f"bench-ns-{i:04d}" for i in range(count)]
    with ControlPlane() as plane:
        kubectl = plane.kubectl
        hooks = plane.start_hooks()
        kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}])
        plane.apply_project_manifests(REPO_ROOT / "metacontroller", hooks=hooks)
        documents = [
            d
            for name in names
            for d in profile_objects(name, f"{name}@example.com")
            if d["kind"] != "ServiceAccount"
        ]
        progress(f"creating {count} Profiles and Namespaces")
        start = time.monotonic()
        kubectl.apply(documents)
        created = time.monotonic() - start
        reached: dict[float, float] = {}
        done = 0
        while time.monotonic() - start < timeout:
            policies = _names(kubectl, "authorizationpolicies.security.istio.io", "kubeflow")
            filters = _names(kubectl, "envoyfilters.networking.istio.io")
            done = sum(
                f"kubeflow/{authorization_name(n)}" in policies and f"{n}/{ENVOY_FILTER_NAME}" in filters
                for n in names
            )
            elapsed = time.monotonic() - start
            for share in (0.5, 0.9, 1.0):
                if share not in reached and done >= share * count:
                    reached[share] = elapsed
            if done == count:
                break
            time.sleep(1)
    return {"count": count, "apply_seconds": created, "reached": reached, "done": done}


def report(result: dict[str, Any]) -> str:
    def at(share: float) -> str:
        seconds = result["reached"].get(share)
        return f"{seconds:.1f}" if seconds is not None else "not reached"

    rows = [
        [
            f"{result['count']}",
            f"{result['apply_seconds']:.1f}",
            at(0.5),
            at(0.9),
            at(1.0),
            f"{result['done']}",
        ]
    ]
    headers = ["namespaces", "apply s", "50% s", "90% s", "100% s", "complete"]
    verdict = "met" if result["reached"].get(1.0, float("inf")) <= TARGET_SECONDS else "missed"
    return stats.table(headers, rows) + f"\n\ntarget: all within {TARGET_SECONDS:.0f} s: {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    arguments = parser.parse_args()
    print(report(run(arguments.count, arguments.timeout)))


if __name__ == "__main__":
    main()
