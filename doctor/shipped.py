"""What the shipped manifests say, read from the package rather than restated: the webhook configuration
doctor compares the live one with is ``webhook/manifests/mutatingwebhookconfiguration.yaml`` itself."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from doctor.selectors import matches

DECORATOR_CONTROLLER = "kubeflow-extension-profile-access"
"""The shipped DecoratorController's name (metacontroller/base/decorator-controller.yaml)."""
PART_OF = ("app.kubernetes.io/part-of", "kubeflow-extension")
"""The label both kustomizations put on every object they apply."""


@functools.cache
def webhook_configuration() -> Mapping[str, Any]:
    text = (resources.files("webhook") / "manifests" / "mutatingwebhookconfiguration.yaml").read_text()
    document: Mapping[str, Any] = yaml.safe_load(text)
    return document


def webhook_entries() -> list[Mapping[str, Any]]:
    return list(webhook_configuration()["webhooks"])


def webhook_service() -> tuple[str, str]:
    """(namespace, name) of the Service the shipped entries call."""
    service = webhook_entries()[0]["clientConfig"]["service"]
    return str(service["namespace"]), str(service["name"])


def profile_namespace(labels: Mapping[str, str]) -> bool:
    """Whether the webhook reaches the namespace in one identity mode or the other: the shipped selectors
    exclude each other and together cover every profile namespace, so their union is the definition."""
    return any(matches(entry.get("namespaceSelector"), labels) for entry in webhook_entries())
