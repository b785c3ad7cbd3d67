"""A throw-away PKI for one control plane run: a CA and the certificates its processes present, as
files. The X.509 work is the product's own (service.certificates); this module only names and writes
the files. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service import certificates

VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def _write_key(path: Path, pem: bytes) -> None:
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)


def _write(files: CertFiles, pair: certificates.KeyPair) -> CertFiles:
    files.cert.write_bytes(pair.cert)
    _write_key(files.key, pair.key)
    return files


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertificateAuthority:
    """A self-signed CA that issues serving and client certificates into ``directory``."""

    def __init__(self, directory: Path, common_name: str = "kubeflow-extension-e2e-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._pair = certificates.new_ca(common_name, _now(), VALIDITY)
        self.files = _write(CertFiles(directory / "ca.crt", directory / "ca.key"), self._pair)

    @property
    def cert_pem(self) -> bytes:
        return self._pair.cert

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
    ) -> CertFiles:
        """Write ``<name>.crt`` and ``<name>.key`` signed by this CA and return their paths."""
        pair = certificates.issue(
            self._pair,
            common_name,
            _now(),
            VALIDITY,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            organizations=organizations,
            server=server,
            client=client,
        )
        return _write(CertFiles(self.directory / f"{name}.crt", self.directory / f"{name}.key"), pair)

    def issue_loopback_serving(self, name: str) -> CertFiles:
        """A serving certificate for ``127.0.0.1`` and ``localhost`` (the webhook, other local servers)."""
        return self.issue(name, "127.0.0.1", ip_addresses=["127.0.0.1"], dns_names=["localhost"], server=True)


FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class ControlPlanePki:
    ca: CertificateAuthority
    apiserver: CertFiles
    admin: CertFiles
    kubelet_client: CertFiles
    service_account_key: Path
    service_account_pub: Path
    front_proxy_ca: CertificateAuthority
    front_proxy_client: CertFiles


def create_control_plane_pki(directory: Path, node_address: str | None = None) -> ControlPlanePki:
    """CA, kube-apiserver serving cert (also for ``node_address``, where Pods reach it), ``system:masters``
    admin client cert, kube-apiserver's client cert towards kubelets, service-account key pair, and the
    aggregation layer's own CA with the client certificate kube-apiserver proxies to extension API
    servers (metrics-server) with, as kubeadm sets it up."""
    ca = CertificateAuthority(directory)
    apiserver = ca.issue(
        "apiserver",
        "kube-apiserver",
        ip_addresses=["127.0.0.1", "10.0.0.1", *([node_address] if node_address else [])],
        dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        server=True,
    )
    admin = ca.issue("admin", "admin", organizations=["system:masters"], client=True)
    kubelet_client = ca.issue(
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        organizations=["system:masters"],
        client=True,
    )
    signer = certificates.new_key_pem()
    sa_key_path, sa_pub_path = directory / "sa.key", directory / "sa.pub"
    _write_key(sa_key_path, signer)
    sa_pub_path.write_bytes(certificates.public_key_pem(signer))
    front_proxy_ca = CertificateAuthority(directory / "front-proxy", "front-proxy-ca")
    front_proxy_client = front_proxy_ca.issue("front-proxy-client", FRONT_PROXY_CLIENT, client=True)
    return ControlPlanePki(
        ca, apiserver, admin, kubelet_client, sa_key_path, sa_pub_path, front_proxy_ca, front_proxy_client
    )
