"""X.509 for the webhook's serving certificate: a CA and the certificates it issues, as PEM bytes.

Pure functions of their inputs (the clock is a parameter), so the renewal decisions can be tested at
any date. Keys are ECDSA P-256: quick to generate, and accepted by kube-apiserver and Python's ssl.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLOCK_SKEW = datetime.timedelta(minutes=5)
"""Certificates start this much in the past, so a peer whose clock is a little behind accepts them."""


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert: bytes
    key: bytes

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_key_pem() -> bytes:
    """A new private key (PKCS#8 PEM), e.g. for signing service-account tokens."""
    return _pem_key(_new_key())


def public_key_pem(key_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(common_name: str, now: datetime.datetime, validity: datetime.timedelta) -> KeyPair:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = _new_key()
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue(
    ca: KeyPair,
    common_name: str,
    now: datetime.datetime,
    validity: datetime.timedelta,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    organizations: Sequence[str] = (),
    server: bool = True,
    client: bool = False,
) -> KeyPair:
    """A certificate signed by `ca`, for TLS serving and/or client authentication."""
    if not (server or client):
        raise ValueError("a certificate must be for a server, a client or both")
    ca_cert = ca.certificate()
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return KeyPair(
        builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _pem_key(key)
    )


def remaining(cert_pem: bytes, now: datetime.datetime) -> datetime.timedelta:
    """How long the certificate stays valid from `now` (negative once expired)."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc - now


def age(cert_pem: bytes, now: datetime.datetime) -> datetime.timedelta:
    """How long ago the certificate was issued (its start is backdated by CLOCK_SKEW when issued here)."""
    return now - (x509.load_pem_x509_certificate(cert_pem).not_valid_before_utc + CLOCK_SKEW)


def signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether `cert_pem` was issued by the CA in `ca_pem` (signature checked, not just names)."""
    try:
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(
            x509.load_pem_x509_certificate(ca_pem)
        )
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def covers(cert_pem: bytes, dns_names: Sequence[str]) -> bool:
    """Whether the certificate names every one of `dns_names`."""
    try:
        extension = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return False
    return set(dns_names) <= set(extension.value.get_values_for_type(x509.DNSName))
