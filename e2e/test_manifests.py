"""Unit test of the manifest localization (no control plane needed)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from e2e.framework.manifests import localize_manifests

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "kfext"},
        "spec": {"selector": selector, "ports": [{"port": 443}]},
    }


def _deployment(name: str, labels: dict[str, str], namespace: str = "kfext") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": labels}}},
    }


MANIFESTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kfext"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": "kfext"}},
    _service("hooks", {"app": "hooks"}),
    _deployment("hooks", {"app": "hooks", "extra": "x"}),
    _service("webhook", {"app": "webhook"}),
    _deployment("webhook", {"app": "webhook"}),
    _service("unrelated", {"app": "other"}),
    _deployment("other", {"app": "other"}),
    _deployment("same-labels-elsewhere", {"app": "hooks"}, namespace="elsewhere"),
    {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "c", "namespace": "kfext"},
    },
    {
        "apiVersion": "metacontroller.k8s.io/v1alpha1",
        "kind": "DecoratorController",
        "metadata": {"name": "dc", "namespace": "kfext"},
        "spec": {
            "hooks": {
                "sync": {
                    "webhook": {
                        "path": "/sync",
                        "timeout": "10s",
                        "service": {"name": "hooks", "namespace": "kfext", "port": 80},
                    }
                },
                "customize": {"webhook": {"url": "http://hooks.kfext/customize?x=1"}},
            }
        },
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "mwc", "annotations": {"cert-manager.io/inject-ca-from": "kfext/c"}},
        "webhooks": [
            {
                "name": "pods.kfext.io",
                "clientConfig": {"service": {"name": "webhook", "namespace": "kfext", "path": "/mutate"}},
                "failurePolicy": "Ignore",
            }
        ],
    },
]


def test_rewrites_references_and_drops_only_what_cannot_run_locally() -> None:
    original = copy.deepcopy(MANIFESTS)
    out = localize_manifests(
        MANIFESTS, hooks_url="http://127.0.0.1:1111", webhook_url="https://127.0.0.1:2222/", ca_bundle_pem=CA
    )
    assert original == MANIFESTS  # input untouched
    names = [(d["kind"], d["metadata"]["name"]) for d in out]
    assert names == [
        ("Namespace", "kfext"),
        ("ConfigMap", "config"),
        ("Service", "unrelated"),
        ("Deployment", "other"),
        ("Deployment", "same-labels-elsewhere"),
        ("DecoratorController", "dc"),
        ("MutatingWebhookConfiguration", "mwc"),
    ]
    hooks = out[5]["spec"]["hooks"]
    assert hooks["sync"]["webhook"] == {"timeout": "10s", "url": "http://127.0.0.1:1111/sync"}
    assert hooks["customize"]["webhook"] == {"url": "http://127.0.0.1:1111/customize?x=1"}
    webhook = out[6]["webhooks"][0]
    assert webhook["clientConfig"] == {
        "url": "https://127.0.0.1:2222/mutate",
        "caBundle": base64.b64encode(CA).decode(),
    }
    assert webhook["failurePolicy"] == "Ignore"
    assert "annotations" not in out[6]["metadata"]


def test_missing_local_url_is_an_error_not_a_silent_in_cluster_reference() -> None:
    with pytest.raises(ValueError, match="hooks_url"):
        localize_manifests(MANIFESTS, webhook_url="https://127.0.0.1:2", ca_bundle_pem=CA)
    with pytest.raises(ValueError, match="webhook_url"):
        localize_manifests(MANIFESTS, hooks_url="http://127.0.0.1:1")


def test_documents_without_references_pass_through() -> None:
    plain = [m for m in MANIFESTS if m["kind"] in ("Namespace", "ConfigMap", "Service", "Deployment")]
    assert localize_manifests(plain) == plain
