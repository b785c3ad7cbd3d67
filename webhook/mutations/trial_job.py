"""Katib trial Jobs: Istio sidecar, workload label and the profile's service account in the pod template.

The Job is mutated rather than its Pods because Istio's injector (``istio-sidecar-injector``) sorts
before this webhook and has decided about the Pod before a Pod webhook of ours could flip the label.
A trial Job is recognised by its controller ownerReference alone: Katib puts no label on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.config import Config
from webhook.mutations import ISTIO_INJECT
from webhook.patch import UNCHANGED, Mutation, lookup, merge

TRIAL_API_VERSIONS = frozenset({"kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"})
"""Katib >= 0.10 and Katib <= 0.9 (Kubeflow 1.1)."""


def is_trial_job(job: Mapping[str, Any]) -> bool:
    owners = lookup(job, ("metadata", "ownerReferences"))
    return isinstance(owners, list) and any(
        isinstance(owner, dict)
        and owner.get("kind") == "Trial"
        and isinstance(owner.get("apiVersion"), str)
        and owner["apiVersion"] in TRIAL_API_VERSIONS
        and owner.get("controller") is True
        for owner in owners
    )


def mutate(job: Mapping[str, Any], config: Config) -> Mutation:
    if not is_trial_job(job):
        return UNCHANGED
    if not isinstance(lookup(job, ("spec", "template")), dict):
        return Mutation(warnings=("trial Job has no spec.template; not mutated",))
    accounts = {"serviceAccountName": config.service_account}
    if lookup(job, ("spec", "template", "spec", "serviceAccount")) is not None:
        # The deprecated field must agree, or the API server rejects the Pod.
        accounts["serviceAccount"] = config.service_account
    wanted = {
        # Both: the label selects Istio's webhook (>= 1.10), the annotation decides in Istio <= 1.11.
        "metadata": {
            "labels": {ISTIO_INJECT: "true", config.workload_label: "true"},
            "annotations": {ISTIO_INJECT: "true"},
        },
        "spec": accounts,
    }
    return Mutation(tuple(merge(job, ("spec", "template"), wanted)))
