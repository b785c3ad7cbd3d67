"""Reads Metacontroller's hook requests (hook JSON v1, and v2's key format) into plain values.

Only a well-formed request may lead to an empty attachment list, because Metacontroller deletes every
observed attachment the answer leaves out. Everything doubtful is a ClientError (4xx), which makes
Metacontroller keep the children and retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks import identity
from hooks.desired import (
    HEADER_FORM_ANNOTATION,
    HEADER_FORMS,
    PROFILE_API_VERSION,
    AttachmentType,
    supported_types,
)
from service.http import ClientError

PROFILE_KEY = "Profile." + PROFILE_API_VERSION


@dataclass(frozen=True)
class SyncRequest:
    namespace: str
    finalizing: bool
    profile: Mapping[str, Any] | None
    types: tuple[AttachmentType, ...]
    observed: int
    """How many attachments Metacontroller reports as existing."""
    header_form: str | None = None
    """The controller's envoy-header-form annotation, if it has one."""
    identity_override: tuple[str, str] | None = None
    """(mode, source) chosen by a Namespace or Profile annotation, if any."""
    on_ambient: bool = False
    """Whether the Namespace is on Istio ambient (no sidecars)."""
    notice: Any = None
    """The Namespace's current identity-notice annotation."""
    mode_label: Any = None
    """The Namespace's current effective-identity-mode label."""
    envoy_filter_observed: bool = False
    """Whether Metacontroller reports an EnvoyFilter of this namespace as still existing."""


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ClientError(400, f"{what} must be a JSON object")
    return value


def _namespace_name(parent: Any, key: str) -> str:
    parent = _mapping(parent, f"`{key}`")
    if parent.get("apiVersion") != "v1" or parent.get("kind") != "Namespace":
        raise ClientError(
            422,
            f"`{key}` is {parent.get('apiVersion')!r} {parent.get('kind')!r}; this hook serves v1 Namespace",
        )
    name = _mapping(parent.get("metadata"), f"`{key}.metadata`").get("name")
    if not isinstance(name, str) or not name:
        raise ClientError(400, f"`{key}.metadata.name` must be a non-empty string")
    return name


def _declared_types(body: Mapping[str, Any]) -> tuple[AttachmentType, ...]:
    controller = _mapping(body.get("controller"), "`controller`")
    spec = _mapping(controller.get("spec"), "`controller.spec`")
    rules = spec.get("attachments") or []
    if not isinstance(rules, list):
        raise ClientError(400, "`controller.spec.attachments` must be a list")
    declared = [
        (rule["apiVersion"], rule["resource"])
        for rule in rules
        if isinstance(rule, Mapping)
        and isinstance(rule.get("apiVersion"), str)
        and isinstance(rule.get("resource"), str)
    ]
    types = supported_types(declared)
    if not types:
        raise ClientError(
            422,
            "the controller declares no supported attachment type (authorizationpolicies.security.istio.io, "
            "servicerolebindings.rbac.istio.io or envoyfilters.networking.istio.io)",
        )
    return types


def _header_form(body: Mapping[str, Any]) -> str | None:
    metadata = _mapping(body["controller"], "`controller`").get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = annotations.get(HEADER_FORM_ANNOTATION) if isinstance(annotations, Mapping) else None
    if value is not None and value not in HEADER_FORMS:
        raise ClientError(
            422,
            f"annotation {HEADER_FORM_ANNOTATION}={value!r} on the controller: "
            f"expected one of {sorted(HEADER_FORMS)}",
        )
    return value


def _profile(related: Any, namespace: str) -> Mapping[str, Any] | None:
    """The namespace's Profile from `related`; the key must be there, or the customize hook is not wired."""
    related = _mapping(related, "`related`")
    if PROFILE_KEY not in related:
        raise ClientError(
            422, f"`related` has no {PROFILE_KEY!r} entry: the controller must call the customize hook"
        )
    profiles = _mapping(related[PROFILE_KEY], f"`related[{PROFILE_KEY!r}]`")
    # v1 and v2 both key a cluster-scoped object by its bare name; match on metadata to accept any key form.
    for profile in profiles.values():
        if not isinstance(profile, Mapping):
            continue
        metadata = profile.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get("name") == namespace:
            return profile
    return None


def _envoy_filter_observed(attachments: Any) -> bool:
    groups = attachments if isinstance(attachments, Mapping) else {}
    return any(
        key.startswith("EnvoyFilter.") and isinstance(group, Mapping) and len(group) > 0
        for key, group in groups.items()
        if isinstance(key, str)
    )


def _observed(attachments: Any) -> int:
    groups = _mapping(attachments if attachments is not None else {}, "`attachments`")
    return sum(len(group) for group in groups.values() if isinstance(group, Mapping))


def parse_sync(body: Any) -> SyncRequest:
    """The facts of a sync (or finalize) request; ClientError if it is not one."""
    body = _mapping(body, "the request body")
    if "object" not in body:
        raise ClientError(400, "a sync request needs `object` (the Namespace)")
    namespace = _namespace_name(body["object"], "object")
    finalizing = body.get("finalizing", False)
    if not isinstance(finalizing, bool):
        raise ClientError(400, "`finalizing` must be a boolean")
    parent = body["object"]
    profile = _profile(body.get("related"), namespace)
    return SyncRequest(
        namespace=namespace,
        finalizing=finalizing,
        types=_declared_types(body),
        profile=profile,
        observed=_observed(body.get("attachments")),
        header_form=_header_form(body),
        identity_override=None if finalizing else identity.override(parent, profile),
        on_ambient=identity.ambient(parent),
        notice=identity.annotation(parent, identity.NOTICE_ANNOTATION),
        mode_label=identity.label(parent, identity.MODE_LABEL),
        envoy_filter_observed=_envoy_filter_observed(body.get("attachments")),
    )


def parse_customize(body: Any) -> str:
    """The namespace a customize request is about; ClientError if it is not one."""
    body = _mapping(body, "the request body")
    if "parent" not in body:
        raise ClientError(400, "a customize request needs `parent` (the Namespace)")
    return _namespace_name(body["parent"], "parent")
