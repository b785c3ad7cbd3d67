"""Cluster objects the end-to-end scenarios share: what Kubeflow's profile controller would create."""

from __future__ import annotations

from typing import Any

from service.config import Config


def profile_objects(name: str, owner: str, config: Config | None = None) -> list[dict[str, Any]]:
    """A Profile, its Namespace labelled as the profile controller labels it, and the service account the
    profile controller creates there (trial Pods run as it)."""
    config = config or Config()
    return [
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": name},
            "spec": {"owner": {"kind": "User", "name": owner}},
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"},
                "annotations": {"owner": owner},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": config.service_account, "namespace": name},
        },
    ]
