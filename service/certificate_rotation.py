"""Self-managed webhook certificates: what the Secret should hold, decided from what it holds now.

The Secret carries the CA, the bundle the API server trusts (current CA, plus the previous one while it
is being replaced) and the serving pair. `plan()` is pure; `service.certificate_sync` does the I/O.
Renewal never breaks trust: a new CA is first published in the bundle, and only a later round, once
the MutatingWebhookConfiguration carries that bundle, issues a serving certificate from it. Every
replica serves the pair it last read, on its own clock, so a CA leaves the bundle only once the serving
pair of its successor is older than `retire_after`: long enough for every replica to have loaded it. A
lost Secret is rebuilt the same way: the CAs the configuration trusts stay in the new bundle until then.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from service import certificates

CA_VALIDITY = datetime.timedelta(days=3650)
CA_RENEW_BEFORE = datetime.timedelta(days=365)
SERVING_VALIDITY = datetime.timedelta(days=365)
SERVING_RENEW_BEFORE = datetime.timedelta(days=30)

CA_CERT, CA_KEY, CA_BUNDLE, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "ca-bundle.crt", "tls.crt", "tls.key"
KEYS = (CA_CERT, CA_KEY, CA_BUNDLE, TLS_CERT, TLS_KEY)
DEFAULT_SECRET = "kubeflow-extension-webhook-certificates"  # noqa: S105 (a name, not a secret)
"""The Secret the shipped overlay names in the webhook's RBAC; doctor looks for the pair there too."""


@dataclass(frozen=True)
class Contents:
    """The Secret's data, decoded."""

    ca: certificates.KeyPair
    bundle: bytes
    serving: certificates.KeyPair

    @classmethod
    def from_data(cls, data: Mapping[str, bytes]) -> Contents | None:
        """None when a key is missing: the Secret is then rebuilt from scratch."""
        if any(not data.get(key) for key in KEYS):
            return None
        return cls(
            certificates.KeyPair(data[CA_CERT], data[CA_KEY]),
            data[CA_BUNDLE],
            certificates.KeyPair(data[TLS_CERT], data[TLS_KEY]),
        )

    def to_data(self) -> dict[str, bytes]:
        return {
            CA_CERT: self.ca.cert,
            CA_KEY: self.ca.key,
            CA_BUNDLE: self.bundle,
            TLS_CERT: self.serving.cert,
            TLS_KEY: self.serving.key,
        }


def _serving(
    ca: certificates.KeyPair, dns_names: Sequence[str], now: datetime.datetime
) -> certificates.KeyPair:
    return certificates.issue(ca, dns_names[0], now, SERVING_VALIDITY, dns_names=dns_names)


def _still_valid(cert_pem: bytes, now: datetime.datetime) -> bool:
    try:
        return certificates.remaining(cert_pem, now) > datetime.timedelta(0)
    except ValueError:
        return False


def _still_trusted(published: bytes, now: datetime.datetime) -> bytes:
    """The unexpired certificates of the bundle the webhook configuration carries (b"" if unreadable)."""
    try:
        trusted = x509.load_pem_x509_certificates(published) if published.strip() else []
    except ValueError:
        return b""
    return b"".join(
        cert.public_bytes(serialization.Encoding.PEM) for cert in trusted if cert.not_valid_after_utc > now
    )


def plan(
    current: Contents | None,
    dns_names: Sequence[str],
    now: datetime.datetime,
    *,
    published: bytes,
    retire_after: datetime.timedelta,
) -> Contents | None:
    """The contents to write, or None when the current ones are good.

    `published` is the bundle the webhook configuration carries (what kube-apiserver trusts now); the
    serving certificate moves to a new CA only once that is `current.bundle`, and the previous CA leaves
    the bundle only `retire_after` after the new serving certificate was issued.
    """
    if current is None or not _still_valid(current.ca.cert, now):
        # Replicas may still serve a pair from the lost or expired contents: keep trusting what they
        # were trusted for, until the new pair has been served long enough.
        ca = certificates.new_ca("kubeflow-extension-webhook-ca", now, CA_VALIDITY)
        kept = _still_trusted(published, now).replace(ca.cert, b"")
        return Contents(ca, ca.cert + kept, _serving(ca, dns_names, now))
    bundle_published = published == current.bundle
    if certificates.remaining(current.ca.cert, now) < CA_RENEW_BEFORE:
        ca = certificates.new_ca("kubeflow-extension-webhook-ca", now, CA_VALIDITY)
        return Contents(ca, ca.cert + current.ca.cert, current.serving)
    serving_ok = (
        _still_valid(current.serving.cert, now)
        and certificates.remaining(current.serving.cert, now) >= SERVING_RENEW_BEFORE
        and certificates.covers(current.serving.cert, dns_names)
        and certificates.signed_by(current.serving.cert, current.ca.cert)
    )
    if serving_ok:
        retiring = current.bundle != current.ca.cert
        if retiring and bundle_published and certificates.age(current.serving.cert, now) >= retire_after:
            return Contents(current.ca, current.ca.cert, current.serving)  # retire the previous CA
        return None
    if not bundle_published and certificates.signed_by(current.serving.cert, current.ca.cert) is False:
        return None  # wait: the API server does not trust the new CA yet
    return Contents(current.ca, current.bundle, _serving(current.ca, dns_names, now))
