"""Notebook Pods get the workload label, so the namespace's EnvoyFilter adds the identity header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.config import Config
from webhook.patch import UNCHANGED, Mutation, lookup, merge

NOTEBOOK_LABEL = "notebook-name"
"""Set by Kubeflow's notebook controller on every notebook Pod."""


def mutate(pod: Mapping[str, Any], config: Config) -> Mutation:
    labels = lookup(pod, ("metadata", "labels"))
    if not isinstance(labels, dict) or NOTEBOOK_LABEL not in labels:
        return UNCHANGED
    return Mutation(tuple(merge(pod, ("metadata", "labels"), {config.workload_label: "true"})))
