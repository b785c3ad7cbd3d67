"""The desired attachments of one profile namespace: a pure function, the whole decision on one screen."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hooks import istio
from hooks.identity import Identity, check_supported, resolve
from service.config import Config

log = logging.getLogger(__name__)

PROFILE_API_VERSION = "kubeflow.org/v1"
PROFILE_RESOURCE = "profiles"


@dataclass(frozen=True, order=True)
class AttachmentType:
    """A type the calling DecoratorController declares in `spec.attachments`."""

    api_version: str
    kind: str


# (group, plural resource) -> kind, for the types this hook knows how to build.
SUPPORTED_RESOURCES = {
    ("security.istio.io", "authorizationpolicies"): "AuthorizationPolicy",
    ("rbac.istio.io", "servicerolebindings"): "ServiceRoleBinding",
    ("networking.istio.io", "envoyfilters"): "EnvoyFilter",
}
ENVOY_FILTER = AttachmentType("networking.istio.io/v1alpha3", "EnvoyFilter")
CURRENT_ISTIO = (ENVOY_FILTER, AttachmentType("security.istio.io/v1beta1", "AuthorizationPolicy"))
"""What the shipped DecoratorController declares; the offline CLI's default."""
LEGACY_ISTIO = (ENVOY_FILTER, AttachmentType("rbac.istio.io/v1alpha1", "ServiceRoleBinding"))
"""What the legacy-istio overlay declares (Istio 1.3-1.5)."""

HEADER_FORM_ANNOTATION = "kubeflow-extension.kubeflow.org/envoy-header-form"
"""On the DecoratorController: `append` for the Envoy of Istio < 1.15, `append-action` for later ones."""
HEADER_FORMS = {"append": True, "append-action": False}
"""Annotation value -> whether the EnvoyFilter uses the old `append: false` field."""


def old_header_form(types: Sequence[AttachmentType], annotation: str | None) -> bool:
    """Whether the EnvoyFilter must use the field Envoy < 1.23 knows. The annotation decides; without it,
    the legacy authorization kind implies Istio < 1.6, and AuthorizationPolicy a current Istio."""
    if annotation is not None:
        return HEADER_FORMS[annotation]
    return any(t.kind == "ServiceRoleBinding" for t in types)


def supported_types(declared: Sequence[tuple[str, str]]) -> tuple[AttachmentType, ...]:
    """The declared (apiVersion, resource) pairs this hook can build, in a fixed order."""
    found = set()
    for api_version, resource in declared:
        group = api_version.rpartition("/")[0]
        kind = SUPPORTED_RESOURCES.get((group, resource))
        if kind is not None:
            found.add(AttachmentType(api_version, kind))
    return tuple(sorted(found, key=lambda t: (t.kind != "EnvoyFilter", t.kind, t.api_version)))


def profile_owner(profile: Mapping[str, Any] | None) -> str | None:
    """The owner's user name, or None when the Profile gives none that can go in a header."""
    if profile is None:
        return None
    spec = profile.get("spec")
    owner = spec.get("owner") if isinstance(spec, Mapping) else None
    name = owner.get("name") if isinstance(owner, Mapping) else None
    if not isinstance(name, str) or not name.strip():
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        log.warning("profile owner has control characters; granting nothing", extra={"owner": repr(name)})
        return None
    return name


def served(namespace: str, owner: str | None, config: Config) -> bool:
    """Whether the namespace gets access at all: it has an owner and is not Kubeflow's own namespace
    (whose service accounts need no extra grant)."""
    return owner is not None and namespace != config.kubeflow_namespace


def desired(
    namespace: str,
    profile: Mapping[str, Any] | None,
    types: Sequence[AttachmentType],
    config: Config,
    *,
    header_form: str | None = None,
    identity: Identity | None = None,
    on_ambient: bool = False,
    envoy_filter_observed: bool = False,
) -> list[dict[str, Any]]:
    """Every attachment the namespace should have; an empty list removes them all.

    Empty when there is no Profile, the Profile names no usable owner, or the namespace is Kubeflow's
    own (whose service accounts need no extra grant). `header_form` is the controller's annotation
    (see old_header_form). `identity` defaults to the configuration's mode. No EnvoyFilter in token
    mode, nor on Istio ambient (`on_ambient`), where no sidecar would apply it.

    Leaving header mode, the header rule stays as long as the EnvoyFilter is still observed: the policy is
    narrowed only once the header is no longer set, so no request is refused in between.
    """
    owner = profile_owner(profile)
    if owner is None or not served(namespace, owner, config):
        return []
    identity = identity or resolve(config, None)
    check_supported(identity, [t.kind for t in types])
    legacy = old_header_form(types, header_form)
    attachments = []
    for attachment_type in types:
        if attachment_type.kind == "EnvoyFilter":
            if identity.header and not on_ambient:
                attachments.append(
                    istio.envoy_filter(attachment_type.api_version, namespace, owner, config, legacy=legacy)
                )
        elif attachment_type.kind == "AuthorizationPolicy":
            attachments.append(
                istio.authorization_policy(
                    attachment_type.api_version,
                    namespace,
                    owner,
                    config,
                    header=identity.header or envoy_filter_observed,
                    token=identity.token,
                )
            )
        else:
            attachments.append(
                istio.service_role_binding(attachment_type.api_version, namespace, owner, config)
            )
    return attachments


def related_rules(namespace: str) -> list[dict[str, Any]]:
    """What the customize hook asks Metacontroller to send with each sync: the namespace's Profile."""
    return [{"apiVersion": PROFILE_API_VERSION, "resource": PROFILE_RESOURCE, "names": [namespace]}]
