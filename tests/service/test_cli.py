from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_sync_prints_the_attachments_of_the_example_profile() -> None:
    result = run("sync", "--namespace", "examples/namespace.yaml", "--profile", "examples/profile.yaml")
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert {(d["kind"], d["metadata"]["namespace"]) for d in documents} == {
        ("AuthorizationPolicy", "kubeflow"),
        ("EnvoyFilter", "alice"),
    }


def test_sync_legacy_istio() -> None:
    result = run(
        "sync",
        "--namespace",
        "examples/namespace.yaml",
        "--profile",
        "examples/profile.yaml",
        "--legacy-istio",
    )
    assert {d["kind"] for d in yaml.safe_load_all(result.stdout)} == {"ServiceRoleBinding", "EnvoyFilter"}


def test_sync_without_profile_creates_nothing() -> None:
    result = run("sync", "--namespace", "examples/namespace.yaml")
    assert result.returncode == 0
    assert [d for d in yaml.safe_load_all(result.stdout) if d] == []


def test_sync_rejects_wrong_files(tmp_path: Path) -> None:
    result = run("sync", "--namespace", "examples/profile.yaml")
    assert result.returncode == 2 and "expected a Namespace" in result.stderr
    other = tmp_path / "p.yaml"
    other.write_text("kind: Profile\nmetadata: {name: bob}\nspec: {owner: {name: bob@x}}\n")
    result = run("sync", "--namespace", "examples/namespace.yaml", "--profile", str(other))
    assert result.returncode == 2 and "does not belong" in result.stderr
