"""Requests in the shape Metacontroller sends, built around the DecoratorControllers the project ships."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILE_KEY = "Profile.kubeflow.org/v1"


def shipped_controller(overlay: str = "") -> dict[str, Any]:
    """The DecoratorController as `kubectl kustomize` renders it from metacontroller/<overlay>."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "metacontroller" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    controller: dict[str, Any]
    (controller,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "DecoratorController"]
    # Metacontroller sends the stored object, with server-set metadata.
    controller["metadata"].update(
        uid="0f6a6c1e-2b1c-4a57-9a77-2d6f0e0c1a11", resourceVersion="4711", generation=1
    )
    return controller


@pytest.fixture(scope="session")
def current_controller() -> dict[str, Any]:
    return shipped_controller()


@pytest.fixture(scope="session")
def legacy_controller() -> dict[str, Any]:
    return shipped_controller("legacy-istio")


def namespace(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": "5b0c3c7e-1d3a-4c1e-8f1f-7d1f1a2b3c4d",
            "resourceVersion": "1234",
            "labels": {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"},
            "annotations": {"owner": "alice@example.com"},
            **metadata,
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def profile(name: str, owner: str | None = "alice@example.com") -> dict[str, Any]:
    spec: dict[str, Any] = {"resourceQuotaSpec": {}}
    if owner is not None:
        spec["owner"] = {"kind": "User", "name": owner}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Profile",
        "metadata": {"name": name, "uid": "p-1"},
        "spec": spec,
    }


def sync_request(
    controller: dict[str, Any],
    ns: dict[str, Any],
    profiles: dict[str, Any] | None = None,
    attachments: dict[str, Any] | None = None,
    finalizing: bool = False,
) -> dict[str, Any]:
    """A sync request: every declared attachment type present (even empty), `related` keyed like v1/v2."""
    observed: dict[str, Any] = {}
    for rule in controller["spec"]["attachments"]:
        kind = {"authorizationpolicies": "AuthorizationPolicy", "envoyfilters": "EnvoyFilter"}.get(
            rule["resource"], "ServiceRoleBinding"
        )
        observed[f"{kind}.{rule['apiVersion']}"] = {}
    for key, objects in (attachments or {}).items():
        observed[key] = objects
    return {
        "controller": copy.deepcopy(controller),
        "object": ns,
        "attachments": observed,
        "related": {PROFILE_KEY: profiles if profiles is not None else {}},
        "finalizing": finalizing,
    }
