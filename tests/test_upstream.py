"""The upstream CRDs and OpenAPI documents are read from the Go module cache, and their absence fails
loudly with the bootstrap command rather than skipping anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.framework import upstream

ROOT = Path(__file__).resolve().parents[1]

TWO_DOCUMENTS = """\
# a header comment
apiVersion: v1
kind: ConfigMap
metadata: {name: first}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: second}
---
"""


def test_module_paths_are_case_encoded_as_in_the_cache() -> None:
    assert upstream.escape_module_path("github.com/Azure/go-ansiterm") == "github.com/!azure/go-ansiterm"
    assert upstream.escape_module_path("istio.io/api") == "istio.io/api"


def test_documents_are_chosen_by_name_in_the_order_asked() -> None:
    documents = upstream.parse_documents(TWO_DOCUMENTS)
    chosen = upstream.by_name(documents, ["second", "first"], "two.yaml")
    assert [d["metadata"]["name"] for d in chosen] == ["second", "first"]
    with pytest.raises(ValueError, match=r"two\.yaml has no document named third"):
        upstream.by_name(documents, ["first", "third"], "two.yaml")


def test_a_module_missing_from_the_cache_names_the_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(upstream.UpstreamMissingError) as error:
        upstream.module_dir(upstream.ISTIO_API, tmp_path)
    assert f"istio.io/api@{upstream.ISTIO_API.version} is not in the Go module cache" in str(error.value)
    assert "bash scripts/bootstrap.sh" in str(error.value)


def test_every_crd_comes_from_its_module_or_is_written_here() -> None:
    names = {crd["metadata"]["name"] for crd in upstream.control_plane_crds()}
    assert names >= {c.name for c in upstream.REGISTRY_CRDS}
    assert {"profiles.kubeflow.org", "servicerolebindings.rbac.istio.io"} <= names
    assert "decoratorcontrollers.metacontroller.k8s.io" in names
    assert all(crd["kind"] == "CustomResourceDefinition" for crd in upstream.control_plane_crds())


def test_the_schema_tests_fail_without_the_module_cache(tmp_path: Path) -> None:
    """With an empty module cache the schema tests fail (not skip) and say how to fill it."""
    environment = {**os.environ, "GOMODCACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/hooks/test_schemas.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "is not in the Go module cache" in result.stdout
    assert "bash scripts/bootstrap.sh" in result.stdout
    assert " passed" not in result.stdout
    assert "skipped" not in result.stdout
