"""Pinned upstream versions and where their built binaries live (their files in the Go module cache:
``upstream.py``).

``e2e/versions.env`` is the single source of truth (``build-control-plane.sh`` sources it); this module
only parses it. Binaries are built into
``${KUBEFLOW_EXTENSION_CACHE:-~/.cache/kubeflow-extension}/<component>-<version>/``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent.parent
VERSIONS_FILE = E2E_DIR / "versions.env"
BUILD_SCRIPT = E2E_DIR / "build-control-plane.sh"
CACHE_ENV = "KUBEFLOW_EXTENSION_CACHE"
METACONTROLLER_BINARY_ENV = "METACONTROLLER_BINARY"
METACONTROLLER_CRDS_ENV = "METACONTROLLER_CRDS"
DEFAULT_CACHE = Path("~/.cache/kubeflow-extension")

_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$")


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=value`` lines of a shell file that only assigns constants; comments and blanks are skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            raise ValueError(f"{VERSIONS_FILE.name}:{number}: not a NAME=value line: {raw!r}")
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    metacontroller: str
    cache_dir: Path
    katib: str = ""
    coredns: str = ""
    metrics_server: str = ""
    metacontroller_override: Path | None = None
    """``METACONTROLLER_BINARY``: a Metacontroller the user has (e.g. v4), instead of the built one."""
    metacontroller_crds_override: Path | None = None
    """``METACONTROLLER_CRDS``: the CRDs matching that binary."""

    @property
    def kubernetes_minor(self) -> tuple[int, int]:
        major, minor, *_ = self.kubernetes.split(".")
        return int(major), int(minor)

    @property
    def kubernetes_dir(self) -> Path:
        return self.cache_dir / f"kubernetes-{self.kubernetes}"

    @property
    def etcd_dir(self) -> Path:
        return self.cache_dir / f"etcd-{self.etcd}"

    @property
    def metacontroller_dir(self) -> Path:
        return self.cache_dir / f"metacontroller-{self.metacontroller}"

    @property
    def kube_apiserver(self) -> Path:
        return self.kubernetes_dir / "bin" / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.kubernetes_dir / "bin" / "kube-controller-manager"

    @property
    def kube_proxy(self) -> Path:
        return self.kubernetes_dir / "bin" / "kube-proxy"

    @property
    def coredns_dir(self) -> Path:
        return self.cache_dir / f"coredns-{self.coredns}"

    @property
    def coredns_binary(self) -> Path:
        """CoreDNS with only a cluster DNS's plugins (``build-control-plane.sh cluster``)."""
        return self.coredns_dir / "bin" / "coredns"

    @property
    def metrics_server_dir(self) -> Path:
        return self.cache_dir / f"metrics-server-{self.metrics_server}"

    @property
    def metrics_server_binary(self) -> Path:
        return self.metrics_server_dir / "bin" / "metrics-server"

    @property
    def etcd_binary(self) -> Path:
        return self.etcd_dir / "bin" / "etcd"

    @property
    def metacontroller_binary(self) -> Path:
        return self.metacontroller_override or self.metacontroller_dir / "bin" / "metacontroller"

    @property
    def katib_bin_dir(self) -> Path:
        """The programs of the e2e/peers/katib module, built against Katib's own module at this version."""
        return self.cache_dir / f"katib-{self.katib}" / "bin"

    def required_files(self) -> dict[str, Path]:
        """Everything the control plane needs from the build cache, by a short name."""
        return {
            "etcd": self.etcd_binary,
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "metacontroller": self.metacontroller_binary,
        }

    def missing(self) -> list[str]:
        """Human-readable lines for every required file that is absent (empty when all are built)."""
        return [f"{name}: {path}" for name, path in self.required_files().items() if not path.is_file()]


def _path_setting(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name)
    return Path(value).expanduser().resolve() if value else None


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    configured = environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_CACHE.expanduser()


def installed_source_version(package: str) -> str | None:
    """The Debian source version an installed package was built from (``1:1.35.0-4+deb12u1``), or None."""
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${source:Version}", package],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
    except FileNotFoundError:  # not a Debian system
        return None
    version = result.stdout.strip()
    return version if result.returncode == 0 and version else None


def full_busybox(source_version: str, environ: Mapping[str, str] | None = None) -> Path:
    """The BusyBox ``build-control-plane.sh busybox`` builds from Debian's source ``source_version`` with
    ``busybox-full.config`` (its directory is named without the epoch)."""
    version = source_version.split(":", 1)[-1]
    return cache_dir(environ) / f"busybox-{version}-full" / "bin" / "busybox"


@cache
def _pins() -> dict[str, str]:
    return parse_env_file(VERSIONS_FILE.read_text())


def pin(name: str) -> str:
    """The version ``versions.env`` assigns to ``name`` (e.g. ``KATIB_VERSION``)."""
    try:
        return _pins()[name]
    except KeyError:
        raise ValueError(f"{VERSIONS_FILE} does not pin {name}") from None


@cache
def load() -> Versions:
    """The pinned versions from ``versions.env`` and the cache directory of this environment."""
    return Versions(
        kubernetes=pin("KUBERNETES_VERSION"),
        etcd=pin("ETCD_VERSION"),
        metacontroller=pin("METACONTROLLER_VERSION"),
        cache_dir=cache_dir(),
        katib=pin("KATIB_VERSION"),
        coredns=pin("COREDNS_VERSION"),
        metrics_server=pin("METRICS_SERVER_VERSION"),
        metacontroller_override=_path_setting(os.environ, METACONTROLLER_BINARY_ENV),
        metacontroller_crds_override=_path_setting(os.environ, METACONTROLLER_CRDS_ENV),
    )


def oldest() -> Versions:
    """The pinned versions, with the oldest Kubernetes doctor is run against for Kubernetes."""
    return dataclasses.replace(load(), kubernetes=pin("KUBERNETES_OLDEST_VERSION"))


if __name__ == "__main__":
    v = load()
    print(f"kubernetes {v.kubernetes}\netcd {v.etcd}\nmetacontroller {v.metacontroller}\ncache {v.cache_dir}")
    for line in v.missing():
        print(f"missing {line}")
