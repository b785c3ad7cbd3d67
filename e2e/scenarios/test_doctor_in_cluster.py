"""``kubeflow-extension doctor`` on the product as users deploy it: Metacontroller in a StatefulSet, the
webhook and the hooks behind their Services with the self-managed certificate, run as a user bound only to
``doctor/rbac/``. The healthy cluster reports no finding. Then each setup broken in one way that only a
Service-called webhook can show (the EndpointSlice and Secret paths the local control plane's URLs cannot
reach) reports exactly its code: the hooks or the webhook scaled to nothing, the serving Secret deleted or
holding a certificate expired, expiring or for another name, a caBundle of another CA.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import product
from e2e.cluster.api import Api
from e2e.cluster.cluster import Cluster
from e2e.framework.doctor import role_for, until, user_kubeconfig
from e2e.framework.doctor import run as run_doctor
from e2e.scenarios.conftest import record
from service import certificates
from service.certificate_rotation import CA_CERT, CA_KEY, DEFAULT_SECRET, TLS_CERT, TLS_KEY

pytestmark = pytest.mark.cluster

USER = "doctor-e2e"
NAMESPACE = product.WEBHOOK_NAMESPACE
CONFIGURATION = "kubeflow-extension"
WEBHOOK_SERVICE = "kubeflow-extension-webhook"

Found = set[tuple[str, str, str]]
"""(code, kind, name) of each finding."""


def doctor_kubeconfig(cluster: Cluster) -> Path:
    """doctor's ClusterRole bound to a user who has nothing else, and that user's kubeconfig."""
    cluster.kubectl.apply(role_for(cluster.kubectl, USER))
    return user_kubeconfig(cluster.plane, USER, cluster.run_dir / f"{USER}.kubeconfig")


def doctor(kubeconfig: Path) -> tuple[int, Found]:
    try:
        status, findings = run_doctor(kubeconfig)
    except RuntimeError as error:
        pytest.fail(str(error))
    return status, {(f["code"], f["object"]["kind"], f["object"]["name"]) for f in findings}


def reports(kubeconfig: Path, expected: tuple[int, Found], timeout: float = 90) -> tuple[int, Found]:
    return until(lambda: doctor(kubeconfig), expected, timeout)


# -- each setup broken in one way ---------------------------------------------------------------------

Breakage = Callable[[Cluster], Iterator[tuple[int, Found]]]
BREAKAGES: dict[str, Breakage] = {}


def breakage(function: Breakage) -> Breakage:
    """Register a generator that breaks the deployment one way, yields what doctor must report, and
    repairs it after the yield."""
    BREAKAGES[function.__name__] = function
    return function


@contextmanager
def scaled_to_zero(cluster: Cluster, deployment: str) -> Iterator[None]:
    scale = ("scale", "deployment", deployment, "-n", NAMESPACE)
    cluster.kubectl.run(*scale, "--replicas=0")
    try:
        yield
    finally:
        cluster.kubectl.run(*scale, "--replicas=2")
        product.rollout_status(cluster, deployment)


@breakage
def hooks_scaled_to_zero(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    with scaled_to_zero(cluster, product.HOOKS_DEPLOYMENT):
        yield 1, {("KFX203", "DecoratorController", "kubeflow-extension-profile-access")}


@breakage
def webhook_scaled_to_zero(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    """Nothing here creates a trial Pod meanwhile: with failurePolicy Fail it would be refused."""
    with scaled_to_zero(cluster, product.WEBHOOK_DEPLOYMENT):
        yield 1, {("KFX111", "Service", WEBHOOK_SERVICE)}


def _stored(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the API server sets, to create or replace it as it was."""
    kept = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    return {**obj, "metadata": kept}


@contextmanager
def secret_replaced(cluster: Cluster, change: Callable[[dict[str, str]], None] | None) -> Iterator[None]:
    """The serving Secret with ``change`` made to its data (None: deleted); the original put back after.
    The replicas read it only once per renewal interval (an hour as shipped), so they serve on meanwhile."""
    original = cluster.kubectl("get", "secret", DEFAULT_SECRET, "-n", NAMESPACE)
    if change is None:
        cluster.kubectl.run("delete", "secret", DEFAULT_SECRET, "-n", NAMESPACE)
    else:
        changed = _stored(original)
        changed["data"] = dict(original["data"])
        change(changed["data"])
        cluster.kubectl.run("replace", "-f", "-", stdin=json.dumps(changed))
    try:
        yield
    finally:
        # Deleted and created again, whatever happened meanwhile: a replica that started while it was
        # broken may have written a Secret of its own.
        cluster.kubectl.run("delete", "secret", DEFAULT_SECRET, "-n", NAMESPACE, "--ignore-not-found")
        cluster.kubectl.run("create", "-f", "-", stdin=json.dumps(_stored(original)))


def _reissued(
    *, issued: datetime.timedelta, validity: datetime.timedelta, dns_names: tuple[str, ...] | None = None
) -> Callable[[dict[str, str]], None]:
    """A serving pair from the Secret's own CA, issued ``issued`` from now and valid for ``validity``, for
    the Service's names unless ``dns_names`` says otherwise."""

    def change(data: dict[str, str]) -> None:
        ca = certificates.KeyPair(base64.b64decode(data[CA_CERT]), base64.b64decode(data[CA_KEY]))
        names = dns_names or (
            f"{WEBHOOK_SERVICE}.{NAMESPACE}.svc",
            f"{WEBHOOK_SERVICE}.{NAMESPACE}.svc.cluster.local",
        )
        now = datetime.datetime.now(datetime.UTC) + issued
        pair = certificates.issue(ca, WEBHOOK_SERVICE, now, validity, dns_names=names)
        data[TLS_CERT] = base64.b64encode(pair.cert).decode()
        data[TLS_KEY] = base64.b64encode(pair.key).decode()

    return change


SERVICE_REF = ("Service", WEBHOOK_SERVICE)


@breakage
def serving_secret_deleted(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    with secret_replaced(cluster, None):
        yield 1, {("KFX106", "Secret", DEFAULT_SECRET)}


@breakage
def serving_certificate_expired(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    day = datetime.timedelta(days=1)
    with secret_replaced(cluster, _reissued(issued=-3 * day, validity=day)):
        yield 1, {("KFX108", *SERVICE_REF)}


@breakage
def serving_certificate_expiring(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    with secret_replaced(
        cluster, _reissued(issued=datetime.timedelta(0), validity=datetime.timedelta(days=3))
    ):
        yield 2, {("KFX109", *SERVICE_REF)}


@breakage
def serving_certificate_for_another_name(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    other = ("kubeflow-extension-webhook.elsewhere.svc",)
    year = datetime.timedelta(days=365)
    with secret_replaced(cluster, _reissued(issued=datetime.timedelta(0), validity=year, dns_names=other)):
        yield 1, {("KFX110", *SERVICE_REF)}


@breakage
def ca_bundle_of_another_ca(cluster: Cluster) -> Iterator[tuple[int, Found]]:
    """kube-apiserver would refuse the webhook's certificate (unknown authority) until it is put back."""
    configuration = cluster.kubectl("get", "mutatingwebhookconfiguration", CONFIGURATION)
    now = datetime.datetime.now(datetime.UTC)
    other = certificates.new_ca("another CA", now, datetime.timedelta(days=30))
    bundle = base64.b64encode(other.cert).decode()

    def bundles(values: list[str]) -> None:
        ops = [
            {"op": "replace", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": value}
            for i, value in enumerate(values)
        ]
        cluster.kubectl.run(
            "patch", "mutatingwebhookconfiguration", CONFIGURATION, "--type=json", "-p", json.dumps(ops)
        )

    entries = configuration["webhooks"]
    bundles([bundle] * len(entries))
    try:
        yield 1, {("KFX107", "MutatingWebhookConfiguration", CONFIGURATION)}
    finally:
        bundles([entry["clientConfig"]["caBundle"] for entry in entries])


def test_doctor_finds_nothing_wrong_then_each_broken_setup(
    request: pytest.FixtureRequest, cluster: Cluster, hooks: Api
) -> None:
    """One cluster for all: each breakage is repaired, and doctor back at nothing, before the next."""
    kubeconfig = doctor_kubeconfig(cluster)
    healthy: tuple[int, Found] = (0, set())
    status, found = doctor(kubeconfig)
    record(request, {"routing": cluster.routing, "healthy": sorted(found), "exit": status})
    assert (status, found) == healthy
    expected, seen, repaired = {}, {}, {}
    for name, breaks in BREAKAGES.items():
        with contextmanager(breaks)(cluster) as expected[name]:
            seen[name] = reports(kubeconfig, expected[name])
        repaired[name] = reports(kubeconfig, healthy)
    record(
        request,
        {"routing": cluster.routing, **{name: [s[0], sorted(s[1])] for name, s in seen.items()}},
    )
    assert seen == expected
    assert repaired == dict.fromkeys(BREAKAGES, healthy)
