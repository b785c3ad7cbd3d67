"""Cluster objects the end-to-end scenarios share: what Kubeflow's profile controller would create."""

from __future__ import annotations

import copy
import json
from typing import Any

from e2e.cluster.controlplane import Kubectl
from service.config import Config
from tests.webhook import katib_objects


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


def create(kubectl: Kubectl, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Create ``obj`` in ``namespace`` through the API and return it as stored (after admission)."""
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    if obj["kind"] == "Pod":
        # The builders' Pods name a Job that does not exist here; the garbage collector would delete them.
        obj["metadata"].pop("ownerReferences", None)
    stored: dict[str, Any] = kubectl("create", "-f", "-", stdin=json.dumps(obj))
    return stored


def katib_trial(name: str, namespace: str) -> dict[str, Any]:
    """A Katib Trial with nothing in it: what a trial Job's controller ownerReference names."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {},
    }


def create_kale_trial_job(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    """A Trial, then the Kale trial Job that Katib's trial controller makes for it (owned by that Trial's
    UID, so the garbage collector keeps it); returns the Job as stored."""
    trial = kubectl("create", "-f", "-", stdin=json.dumps(katib_trial(name, namespace)))
    job = katib_objects.trial_job(kale="0.7")
    job["metadata"]["name"] = name
    job["metadata"]["ownerReferences"][0].update(name=name, uid=trial["metadata"]["uid"])
    return create(kubectl, job, namespace)
