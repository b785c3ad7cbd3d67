"""``kubeflow-extension doctor`` on the product as users deploy it: Metacontroller in a StatefulSet, the
webhook and the hooks behind their Services with the self-managed certificate, run as a user bound only to
``doctor/rbac/``. The healthy cluster reports no finding; the hooks scaled to nothing report exactly that
their Service has no ready endpoint (the EndpointSlice path the local control plane's URLs cannot reach).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import product
from e2e.cluster.api import Api
from e2e.cluster.cluster import Cluster
from e2e.cluster.controlplane import REPO_ROOT
from e2e.framework.doctor import run as run_doctor
from e2e.framework.processes import eventually
from e2e.scenarios.conftest import record

pytestmark = pytest.mark.cluster

USER = "doctor-e2e"
ROLE = "kubeflow-extension-doctor"


def doctor_kubeconfig(cluster: Cluster) -> Path:
    """doctor's ClusterRole from its kustomization, bound to a user who has nothing else."""
    cluster.kubectl.run("apply", "-k", str(REPO_ROOT / "doctor" / "rbac"))
    cluster.kubectl.run(
        "create", "clusterrolebinding", USER, f"--clusterrole={ROLE}", f"--user={USER}", check=False
    )
    kubeconfig = cluster.run_dir / f"{USER}.kubeconfig"
    kubeconfig.write_text(cluster.plane.client_kubeconfig(USER))
    kubeconfig.chmod(0o600)
    return kubeconfig


def doctor(kubeconfig: Path) -> tuple[int, list[dict[str, Any]]]:
    try:
        return run_doctor(kubeconfig)
    except RuntimeError as error:
        pytest.fail(str(error))


def codes(findings: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(f["code"], f["object"]["kind"], f["object"]["name"]) for f in findings}


def test_doctor_finds_nothing_wrong_and_then_the_hooks_without_endpoints(
    request: pytest.FixtureRequest, cluster: Cluster, hooks: Api
) -> None:
    kubeconfig = doctor_kubeconfig(cluster)
    status, findings = doctor(kubeconfig)
    record(request, {"routing": cluster.routing, "healthy": sorted(codes(findings)), "exit": status})
    assert (status, findings) == (0, []), findings

    scale = ("scale", "deployment", product.HOOKS_DEPLOYMENT, "-n", product.WEBHOOK_NAMESPACE)
    cluster.kubectl.run(*scale, "--replicas=0")

    def with_findings() -> tuple[int, list[dict[str, Any]]] | None:
        result = doctor(kubeconfig)
        return result if result[1] else None

    try:
        status, findings = eventually(
            with_findings, timeout=60, what="doctor to notice the hooks without endpoints"
        )
    finally:
        cluster.kubectl.run(*scale, "--replicas=2")
        product.rollout_status(cluster, product.HOOKS_DEPLOYMENT)
    record(
        request, {"routing": cluster.routing, "hooks scaled to 0": sorted(codes(findings)), "exit": status}
    )
    assert status == 1 and {f["code"] for f in findings} == {"KFX203"}, findings
