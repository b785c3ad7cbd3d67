"""Refresh the upstream CRDs in ``tests/data/crds`` that come from Go modules.

    python -m e2e.extract_crds            # needs `go` and the Go module proxy

Each output file holds the chosen CustomResourceDefinition documents copied byte for byte from the module's
file (only the other documents are left out), after a one-line comment naming the source. The sources are
listed in ``SOURCES`` and in ``tests/data/crds/README.md``; keep both in step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from e2e.controlplane import CRD_DIR


@dataclass(frozen=True)
class Source:
    output: str
    module: str
    version: str
    path: str
    crds: tuple[str, ...]


SOURCES = (
    Source(
        "istio-authorizationpolicies.yaml",
        "istio.io/api",
        "v1.32.0",
        "kubernetes/customresourcedefinitions.gen.yaml",
        ("authorizationpolicies.security.istio.io",),
    ),
    Source(
        "istio-envoyfilters.yaml",
        "istio.io/api",
        "v1.32.0",
        "kubernetes/customresourcedefinitions.gen.yaml",
        ("envoyfilters.networking.istio.io",),
    ),
    Source(
        "katib-experiments.yaml",
        "github.com/kubeflow/katib",
        "v0.19.0",
        "manifests/v1beta1/components/crd/experiment.yaml",
        ("experiments.kubeflow.org",),
    ),
    Source(
        "katib-trials.yaml",
        "github.com/kubeflow/katib",
        "v0.19.0",
        "manifests/v1beta1/components/crd/trial.yaml",
        ("trials.kubeflow.org",),
    ),
    # The webhook manifests' Certificate and Issuer, for their server-side dry run.
    Source(
        "cert-manager-certificates.yaml",
        "github.com/cert-manager/cert-manager",
        "v1.19.1",
        "deploy/crds/cert-manager.io_certificates.yaml",
        ("certificates.cert-manager.io",),
    ),
    Source(
        "cert-manager-issuers.yaml",
        "github.com/cert-manager/cert-manager",
        "v1.19.1",
        "deploy/crds/cert-manager.io_issuers.yaml",
        ("issuers.cert-manager.io",),
    ),
)

_SEPARATOR = re.compile(r"(?m)^---[ \t]*\n")


def module_dir(module: str, version: str) -> Path:
    """Download ``module@version`` through the Go module proxy and return its directory."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {module}@{version}: {info.get('Error') or result.stderr}")
    return Path(info["Dir"])


def select_documents(text: str, names: tuple[str, ...]) -> list[str]:
    """The raw text of the documents whose ``metadata.name`` is in ``names``, in file order, with leading
    comment lines (file headers) removed."""
    chosen = []
    for chunk in _SEPARATOR.split(text):
        document = yaml.safe_load(chunk)
        if isinstance(document, dict) and document.get("metadata", {}).get("name") in names:
            lines = chunk.splitlines()
            while lines and lines[0].startswith("#"):
                lines.pop(0)
            chosen.append("\n".join(lines).strip("\n") + "\n")
    found = {yaml.safe_load(c)["metadata"]["name"] for c in chosen}
    if found != set(names):
        raise ValueError(f"not found: {sorted(set(names) - found)}")
    return chosen


def render(source: Source, documents: list[str]) -> str:
    header = (
        f"# {', '.join(source.crds)} from {source.module} {source.version} {source.path} (see README.md)\n"
    )
    return header + "---\n" + "---\n".join(documents)


def main() -> int:
    for source in SOURCES:
        text = (module_dir(source.module, source.version) / source.path).read_text()
        output = CRD_DIR / source.output
        output.write_text(render(source, select_documents(text, source.crds)))
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
