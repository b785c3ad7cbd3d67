"""Upstream files the project reads but does not hold: CRDs and Kubernetes' OpenAPI documents, read from
pinned Go modules in the local Go module cache.

    python -m e2e.framework.upstream download   # once, by scripts/bootstrap.sh: `go mod download` the missing
    python -m e2e.framework.upstream show NAME    # one CRD as the tests and the control plane see it

The versions are pinned in ``versions.env``. After one download everything is read from the cache, so
runs work offline; nothing is copied into the repository. A module missing from the cache is an
``UpstreamMissingError`` naming the bootstrap, never a skipped test. The CRDs of APIs whose owners
publish no Go module the proxy serves (Kubeflow's Profile, Istio <= 1.5's ServiceRoleBinding) are
written here, in ``WRITTEN_CRD_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from e2e.framework import versions

WRITTEN_CRD_DIR = versions.E2E_DIR.parent / "tests" / "data" / "crds"
BOOTSTRAP = "bash scripts/bootstrap.sh"
# The checksum database has no entry for Metacontroller (its go.mod names another module path).
NO_SUM_DB = "github.com/metacontroller/metacontroller"

Document = dict[str, Any]
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UpstreamMissingError(RuntimeError):
    """A pinned module is not in the Go module cache (or Go is not installed)."""


@dataclass(frozen=True)
class Module:
    """A Go module at the version ``versions.env`` pins under ``pin`` (without the leading ``v``)."""

    path: str
    pin: str

    @property
    def version(self) -> str:
        return "v" + versions.pin(self.pin)

    def __str__(self) -> str:
        return f"{self.path}@{self.version}"


ISTIO_API = Module("istio.io/api", "ISTIO_API_VERSION")
KATIB = Module("github.com/kubeflow/katib", "KATIB_VERSION")
CERT_MANAGER = Module("github.com/cert-manager/cert-manager", "CERT_MANAGER_VERSION")
METACONTROLLER = Module("github.com/metacontroller/metacontroller", "METACONTROLLER_VERSION")
KUBERNETES = Module("k8s.io/kubernetes", "KUBERNETES_VERSION")
METRICS_SERVER = Module("sigs.k8s.io/metrics-server", "METRICS_SERVER_VERSION")
MODULES = (ISTIO_API, KATIB, CERT_MANAGER, METACONTROLLER, KUBERNETES, METRICS_SERVER)


@dataclass(frozen=True)
class UpstreamCrd:
    """The CustomResourceDefinition ``name`` in the file ``path`` of ``module``."""

    name: str
    module: Module
    path: str


_ISTIO_CRDS = "kubernetes/customresourcedefinitions.gen.yaml"
REGISTRY_CRDS = (
    UpstreamCrd("authorizationpolicies.security.istio.io", ISTIO_API, _ISTIO_CRDS),
    UpstreamCrd("envoyfilters.networking.istio.io", ISTIO_API, _ISTIO_CRDS),
    UpstreamCrd("experiments.kubeflow.org", KATIB, "manifests/v1beta1/components/crd/experiment.yaml"),
    UpstreamCrd("trials.kubeflow.org", KATIB, "manifests/v1beta1/components/crd/trial.yaml"),
    # For the server-side dry run of the webhook manifests' Certificate and Issuer.
    UpstreamCrd(
        "certificates.cert-manager.io", CERT_MANAGER, "deploy/crds/cert-manager.io_certificates.yaml"
    ),
    UpstreamCrd("issuers.cert-manager.io", CERT_MANAGER, "deploy/crds/cert-manager.io_issuers.yaml"),
)
METACONTROLLER_CRDS = "manifests/production/metacontroller-crds-v1.yaml"
KUBERNETES_OPENAPI = {
    # group/version path of kube-apiserver's /openapi/v3/<path> -> the file generated from it in the module
    "api/v1": "api/openapi-spec/v3/api__v1_openapi.json",
    "apis/batch/v1": "api/openapi-spec/v3/apis__batch__v1_openapi.json",
}


def escape_module_path(path: str) -> str:
    """The module path as the module cache spells it: each capital letter becomes ``!`` and its lower case."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in path)


@cache
def module_cache() -> Path:
    """``go env GOMODCACHE`` (which honours ``GOMODCACHE``, ``GOPATH`` and ``go env -w``)."""
    go = shutil.which("go")
    if go is None:
        raise UpstreamMissingError(f"`go` is not on PATH: install Go, then run `{BOOTSTRAP}`")
    result = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
    return Path(result.stdout.strip())


def location(module: Module, cache_dir: Path) -> Path:
    """Where ``go mod download`` extracts ``module`` in ``cache_dir``."""
    return cache_dir / f"{escape_module_path(module.path)}@{module.version}"


def module_dir(module: Module, cache_dir: Path | None = None) -> Path:
    """The module's extracted directory in the cache; ``UpstreamMissingError`` when it is not there."""
    cache_dir = module_cache() if cache_dir is None else cache_dir
    directory = location(module, cache_dir)
    if not directory.is_dir():
        raise UpstreamMissingError(
            f"{module} is not in the Go module cache ({cache_dir}). "
            f"Run `{BOOTSTRAP}` once; it downloads the modules pinned in {versions.VERSIONS_FILE}."
        )
    return directory


def module_file(module: Module, path: str) -> Path:
    file = module_dir(module) / path
    if not file.is_file():
        raise UpstreamMissingError(f"{module} has no file {path}")
    return file


def parse_documents(text: str) -> list[Document]:
    """The mapping documents of a YAML stream."""
    return [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if isinstance(d, dict)]


def by_name(documents: Sequence[Document], names: Sequence[str], source: str) -> list[Document]:
    """The documents whose ``metadata.name`` is in ``names``, in the order of ``names``."""
    found = {d.get("metadata", {}).get("name"): d for d in documents}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{source} has no document named {', '.join(missing)}")
    return [found[n] for n in names]


@cache
def _module_documents(module: Module, path: str) -> tuple[Document, ...]:
    return tuple(parse_documents(module_file(module, path).read_text()))


def registry_crd(crd: UpstreamCrd) -> Document:
    (document,) = by_name(_module_documents(crd.module, crd.path), [crd.name], f"{crd.module} {crd.path}")
    return document


def written_crds() -> list[Document]:
    """The CRDs written in this repository (``WRITTEN_CRD_DIR``)."""
    documents: list[Document] = []
    for path in sorted(WRITTEN_CRD_DIR.glob("*.yaml")):
        documents += parse_documents(path.read_text())
    return documents


def api_crds() -> list[Document]:
    """The CRDs of the APIs the product and its tests talk to: the registry's and the written ones."""
    return [registry_crd(c) for c in REGISTRY_CRDS] + written_crds()


def control_plane_crds() -> list[Document]:
    """Every CRD the local control plane installs: Metacontroller's own, then ``api_crds()``."""
    return [*_module_documents(METACONTROLLER, METACONTROLLER_CRDS), *api_crds()]


@cache
def kubernetes_openapi(group_version_path: str) -> Document:
    """Kubernetes' OpenAPI v3 document for ``api/v1`` or ``apis/batch/v1`` at the pinned version, as the
    kubernetes module generates it from kube-apiserver (without the ``enum`` lists a live server adds)."""
    document: Document = json.loads(
        module_file(KUBERNETES, KUBERNETES_OPENAPI[group_version_path]).read_text()
    )
    return document


def download() -> None:
    """``go mod download`` every pinned module not yet in the cache (nothing to do, and no network, after
    the first time)."""
    missing = [m for m in MODULES if not location(m, module_cache()).is_dir()]
    if not missing:
        print(f"upstream modules: all {len(MODULES)} in {module_cache()}")
        return
    print(f"upstream modules: downloading {' '.join(map(str, missing))}", flush=True)
    nosumdb = ",".join(filter(None, [os.environ.get("GONOSUMDB", ""), NO_SUM_DB]))
    environment = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GONOSUMDB": nosumdb}
    subprocess.run(["go", "mod", "download", *map(str, missing)], check=True, env=environment)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.framework.upstream", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("download", help="go mod download the pinned modules missing from the cache")
    show = commands.add_parser("show", help="print one CRD of control_plane_crds() as YAML")
    show.add_argument("name", help="e.g. envoyfilters.networking.istio.io")
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            download()
        else:
            (crd,) = by_name(control_plane_crds(), [args.name], "the installed CRDs")
            print(yaml.safe_dump(crd, sort_keys=False), end="")
    except (UpstreamMissingError, ValueError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
