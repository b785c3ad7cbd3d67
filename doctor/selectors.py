"""Kubernetes label selectors, evaluated as kube-apiserver does, to tell which namespaces an admission
webhook's ``namespaceSelector`` reaches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _expression(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = str(expression.get("key")), expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy ``selector``; an absent or empty selector matches everything."""
    if not selector:
        return True
    match_labels = selector.get("matchLabels") or {}
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    return all(_expression(e, labels) for e in selector.get("matchExpressions") or [])
