"""Every manifest the project ships, as a user applies it (not localized), passes a server-side dry run
on kube-apiserver 1.37 with the upstream CRDs installed: schemas, defaults, CEL matchConditions and
the webhook configuration's validation all included."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.cluster.controlplane import REPO_ROOT, Kubectl
from e2e.framework.manifests import Document, load_documents

pytestmark = pytest.mark.e2e

KUSTOMIZATIONS = [
    "metacontroller",
    "metacontroller/legacy-istio",
    "metacontroller/istio-1.6-1.14",
    "webhook/manifests",
    "webhook/self-managed-certificates",
]
KIND_MANIFESTS = sorted((REPO_ROOT / "e2e" / "kind").glob("*.yaml"))


def dry_run(kubectl: Kubectl, documents: list[Document]) -> str:
    # A dry run creates nothing, so the namespaces the documents live in must exist for real.
    namespaces = {d["metadata"].get("namespace") for d in documents} - {None}
    namespaces |= {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    kubectl.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(namespaces)]
    )
    return kubectl.apply(documents, dry_run=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_passes_server_side_dry_run(kubectl: Kubectl, directory: str) -> None:
    documents = kubectl.kustomize(REPO_ROOT / directory)
    output = dry_run(kubectl, documents)
    assert output.count("(server dry run)") == len(documents), output


@pytest.mark.parametrize("path", KIND_MANIFESTS, ids=lambda p: p.name)
def test_kind_e2e_manifest_passes_server_side_dry_run(kubectl: Kubectl, path: Path) -> None:
    documents = load_documents(path.read_text())
    output = dry_run(kubectl, documents)
    assert output.count("(server dry run)") == len(documents), output
