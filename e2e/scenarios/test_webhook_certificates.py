"""The self-managed certificate renewed under load by three replicas, each keeping its own copy.

Every replica checks the Secret on its own clock (``--renew-interval``, here 6 s instead of an hour so the
renewal fits in a scenario) and serves the pair it last read. Two renewals: the CA nearing its end (its
certificate re-issued with the same key to end within ``CA_RENEW_BEFORE``: time passing, not a new CA),
and the Secret deleted by someone. Either way a new CA is published, serves, and the old one is retired;
no new connection to any replica may find a certificate kube-apiserver no longer trusts.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from e2e.cluster import product
from e2e.cluster.cluster import Cluster
from e2e.framework.processes import eventually
from e2e.scenarios.conftest import PROFILES, record
from e2e.scenarios.under_load import under_load
from service import certificates
from service.certificate_rotation import CA_BUNDLE, CA_CERT, CA_KEY, CA_RENEW_BEFORE

pytestmark = pytest.mark.cluster

SECRET = "kubeflow-extension-webhook-certificates"
WEBHOOK_PORT = 8443
REPLICAS = 3
RENEW_INTERVAL = "--renew-interval=6"
RENEWED_WITHIN = 90.0


@pytest.fixture
def three_replicas_checking_often(cluster: Cluster, webhook: dict[str, dict[str, Any]]) -> Iterator[None]:
    """The Deployment at three replicas that check the Secret every 6 s; put back as it was afterwards."""
    deployment = cluster.kubectl.get("deployment", product.WEBHOOK_DEPLOYMENT, product.WEBHOOK_NAMESPACE)
    assert deployment is not None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    replicas = deployment["spec"]["replicas"]

    def set_deployment(count: int, container_args: list[str]) -> None:
        patch = [
            {"op": "replace", "path": "/spec/replicas", "value": count},
            {"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": container_args},
        ]
        cluster.kubectl.run(
            "patch", "deployment", product.WEBHOOK_DEPLOYMENT, "-n", product.WEBHOOK_NAMESPACE,
            "--type=json", f"--patch={json.dumps(patch)}",
        )  # fmt: skip
        product.rollout_status(cluster, product.WEBHOOK_DEPLOYMENT)
        eventually(
            lambda: product.all_replicas_ready(cluster), timeout=120, what="only the new replicas left"
        )

    set_deployment(REPLICAS, [*args, RENEW_INTERVAL])
    yield
    set_deployment(replicas, args)


def secret_data(cluster: Cluster) -> dict[str, bytes] | None:
    secret = cluster.kubectl.get("secret", SECRET, product.WEBHOOK_NAMESPACE)
    if secret is None:
        return None
    return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}


def aged(ca: certificates.KeyPair, remaining: datetime.timedelta) -> bytes:
    """The CA's certificate re-issued with its own key and names, ending ``remaining`` from now: what the
    Secret holds when that much of the CA's life is left. What it signed still verifies."""
    key = serialization.load_pem_private_key(ca.key, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    current = ca.certificate()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(current.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(current.not_valid_before_utc)
        .not_valid_after(now + remaining)
    )
    for extension in current.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def age_the_ca(cluster: Cluster) -> bytes:
    """Rewrite the Secret's CA certificate to end within the renewal window; returns the CA it had."""
    data = secret_data(cluster)
    assert data is not None
    ca = certificates.KeyPair(data[CA_CERT], data[CA_KEY])
    data[CA_CERT] = aged(ca, CA_RENEW_BEFORE - datetime.timedelta(days=30))
    patch = {"data": {CA_CERT: base64.b64encode(data[CA_CERT]).decode()}}
    cluster.kubectl.run(
        "patch", "secret", SECRET, "-n", product.WEBHOOK_NAMESPACE, f"--patch={json.dumps(patch)}"
    )
    return ca.cert


def delete_the_secret(cluster: Cluster) -> bytes:
    data = secret_data(cluster)
    assert data is not None
    cluster.kubectl.run("delete", "secret", SECRET, "-n", product.WEBHOOK_NAMESPACE)
    return data[CA_CERT]


def served_certificates(cluster: Cluster) -> dict[str, bytes]:
    """What each serving webhook Pod (not one shutting down) presents to a new connection, by Pod name."""
    return {
        pod["metadata"]["name"]: ssl.get_server_certificate(
            (pod["status"]["podIP"], WEBHOOK_PORT), timeout=3
        ).encode()
        for pod in product.webhook_pods(cluster)
        if "deletionTimestamp" not in pod["metadata"]
    }


def renewed(cluster: Cluster, old_ca: bytes) -> bool:
    """A new CA alone in the Secret's bundle (the old one retired), and every replica serving its pair."""
    data = secret_data(cluster)
    if not data or data.get(CA_CERT) in (None, old_ca) or data.get(CA_BUNDLE) != data[CA_CERT]:
        return False
    try:
        served = served_certificates(cluster)
    except OSError:
        return False  # a replica not listening yet
    return len(served) == REPLICAS and all(
        certificates.signed_by(cert, data[CA_CERT]) for cert in served.values()
    )


RENEWALS: dict[str, Callable[[Cluster], bytes]] = {
    "ca-nearing-its-end": age_the_ca,
    "secret-deleted": delete_the_secret,
}


@pytest.mark.parametrize("renewal", RENEWALS)
@pytest.mark.usefixtures("three_replicas_checking_often")
def test_a_renewed_certificate_refuses_no_admission(
    request: pytest.FixtureRequest, cluster: Cluster, webhook: dict[str, dict[str, Any]], renewal: str
) -> None:
    timeline: list[str] = []

    def renew() -> None:
        began = time.monotonic()
        old_ca = RENEWALS[renewal](cluster)
        eventually(
            lambda: renewed(cluster, old_ca), timeout=RENEWED_WITHIN, what="the new CA alone and served"
        )
        timeline.append(f"renewed and served in {time.monotonic() - began:.1f} s")

    tally = under_load(cluster, list(PROFILES), webhook, renew)
    record(request, {"routing": cluster.routing, "renewal": renewal, "timeline": timeline, **tally.figures()})
    assert tally.refused == 0 and tally.client["failed"] == 0, tally.figures()
