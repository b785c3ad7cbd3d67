"""The webhook's serving certificate against the caBundle kube-apiserver trusts, its expiry and its names.

The certificate is read from where the shipped manifests put it: the self-managed Secret, or the Secret
of the cert-manager Certificate named by the configuration's CA-injection annotation. A configuration
that calls a URL rather than a Service (a webhook outside the cluster) names no Secret, so nothing is
checked for it here.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from doctor import codes
from doctor.checks import webhook
from doctor.findings import Finding, Ref
from doctor.snapshot import Object, Snapshot, find, metadata
from service import certificates
from service.certificate_rotation import DEFAULT_SECRET, TLS_CERT
from service.config import Config

EXPIRY_WARNING = datetime.timedelta(days=7)
CA_INJECTION_ANNOTATION = "cert-manager.io/inject-ca-from"


def _secret_name(snapshot: Snapshot, configuration: Object, namespace: str) -> str:
    """The self-managed Secret if it exists, else the one cert-manager writes for the injected CA."""
    if find(snapshot.secrets, DEFAULT_SECRET, namespace) is not None:
        return DEFAULT_SECRET
    injected = str((metadata(configuration).get("annotations") or {}).get(CA_INJECTION_ANNOTATION, ""))
    certificate_namespace, _, certificate_name = injected.partition("/")
    certificate = find(snapshot.certificates, certificate_name, certificate_namespace or None)
    if certificate is not None:
        return str((certificate.get("spec") or {}).get("secretName", ""))
    return DEFAULT_SECRET


def _data(secret: Object, key: str) -> bytes | None:
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value) if value else None


def _cas(bundle_b64: str) -> Iterator[bytes]:
    try:
        loaded = x509.load_pem_x509_certificates(base64.b64decode(bundle_b64))
    except ValueError:
        return
    for certificate in loaded:
        yield certificate.public_bytes(serialization.Encoding.PEM)


def _judge(cert: bytes, bundles: set[str], service: tuple[str, str], now: datetime.datetime) -> list[Finding]:
    namespace, name = service
    ref = Ref("Service", name, namespace)
    findings = []
    untrusted = [b for b in sorted(bundles) if not any(certificates.signed_by(cert, ca) for ca in _cas(b))]
    if untrusted:
        findings.append(
            codes.SERVING_CERTIFICATE_UNTRUSTED.at(
                webhook.our_ref(),
                f"the certificate served for {namespace}/{name} is not signed by the caBundle",
            )
        )
    left = certificates.remaining(cert, now)
    if left <= datetime.timedelta(0):
        findings.append(codes.SERVING_CERTIFICATE_EXPIRED.at(ref, f"expired {-left} ago"))
    elif left < EXPIRY_WARNING:
        findings.append(codes.SERVING_CERTIFICATE_EXPIRING.at(ref, f"expires in {left}"))
    dns_name = f"{name}.{namespace}.svc"  # the name kube-apiserver verifies for a Service reference
    if not certificates.covers(cert, [dns_name]):
        findings.append(codes.SERVING_CERTIFICATE_NAMES.at(ref, f"the certificate does not name {dns_name}"))
    return findings


def check_certificate(snapshot: Snapshot, config: Config) -> list[Finding]:
    configuration = webhook.ours(snapshot)
    if configuration is None:
        return []
    findings = []
    for namespace, name in sorted(webhook.called_services(configuration)):
        secret_name = _secret_name(snapshot, configuration, namespace)
        secret = find(snapshot.secrets, secret_name, namespace)
        cert = _data(secret, TLS_CERT) if secret is not None else None
        if cert is None:
            findings.append(
                codes.SERVING_CERTIFICATE_MISSING.at(
                    Ref("Secret", secret_name, namespace),
                    f"no {TLS_CERT} in Secret {namespace}/{secret_name}",
                )
            )
            continue
        bundles = {
            str(e["clientConfig"]["caBundle"])
            for e in webhook.entries(configuration)
            if (e.get("clientConfig") or {}).get("caBundle") and (e.get("clientConfig") or {}).get("service")
        }
        findings += _judge(cert, bundles, (namespace, name), snapshot.now)
    return findings
