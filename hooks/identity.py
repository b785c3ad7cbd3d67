"""Which identity mode a profile namespace uses, and what its Namespace must say about it. Pure functions.

The configuration's ``identity_mode`` is the default; an annotation on the Namespace, or else on its
Profile, overrides it for that namespace. The decorator labels each profile namespace with the mode in
effect (``MODE_LABEL``): the webhook's configuration routes by that label, so the webhook gives Pods a
token exactly where the hooks admit one, without reading anything itself. A namespace on Istio ambient
has no sidecar to apply an EnvoyFilter, so header mode does nothing there: the decorator then annotates
the Namespace with the reason and the setting to change, and removes that annotation once it no longer
applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.config import IDENTITY_MODES, Config
from service.http import ClientError

MODE_ANNOTATION = "kubeflow-extension.kubeflow.org/identity-mode"
"""On a Namespace or Profile: ``header``, ``token`` or ``both`` for this namespace only."""
MODE_LABEL = "kubeflow-extension.kubeflow.org/effective-identity-mode"
"""Set by the decorator on every profile namespace it serves: the mode in effect there, whatever chose it.
The MutatingWebhookConfiguration sends namespaces labelled ``token`` or ``both`` to the webhook's token
path (webhook/manifests/mutatingwebhookconfiguration.yaml)."""
NOTICE_ANNOTATION = "kubeflow-extension.kubeflow.org/identity-notice"
"""Set by the decorator on a Namespace whose identity mode cannot work there."""
AMBIENT_LABEL = "istio.io/dataplane-mode"
AMBIENT = "ambient"
AMBIENT_HEADER_NOTICE = (
    "identity mode 'header' has no effect here: this namespace is on Istio ambient "
    f"({AMBIENT_LABEL}=ambient), which has no sidecar to apply the EnvoyFilter that sets the identity "
    "header, so no EnvoyFilter is created and calls to ml-pipeline are denied. Use token identity "
    "(Kubeflow Pipelines >= 1.7): annotate the Profile or the Namespace with "
    f"{MODE_ANNOTATION}=token, or set identity_mode: token in the configuration."
)


@dataclass(frozen=True)
class Identity:
    mode: str
    source: str
    """Where the mode came from: ``configuration``, ``namespace annotation`` or ``profile annotation``."""

    @property
    def header(self) -> bool:
        """Whether the owner's identity header is set (by the EnvoyFilter) and admitted."""
        return self.mode in ("header", "both")

    @property
    def token(self) -> bool:
        """Whether a projected token in an `authorization` header without any identity header is admitted."""
        return self.mode in ("token", "both")


def _metadata_entry(obj: Mapping[str, Any] | None, field: str, key: str) -> Any:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    entries = metadata.get(field) if isinstance(metadata, Mapping) else None
    return entries.get(key) if isinstance(entries, Mapping) else None


def annotation(obj: Mapping[str, Any] | None, key: str) -> Any:
    return _metadata_entry(obj, "annotations", key)


def label(obj: Mapping[str, Any] | None, key: str) -> Any:
    return _metadata_entry(obj, "labels", key)


def override(namespace: Mapping[str, Any], profile: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """The (mode, source) an annotation chooses, the Namespace's before the Profile's; None if neither.

    A value that is not a mode is a ClientError (422): Metacontroller then keeps the namespace's objects
    and records the message as a SyncError Event on the Namespace, where its owner sees it.
    """
    for obj, source in ((namespace, "namespace annotation"), (profile, "profile annotation")):
        value = annotation(obj, MODE_ANNOTATION)
        if value is None:
            continue
        if value not in IDENTITY_MODES:
            raise ClientError(
                422, f"{source} {MODE_ANNOTATION}={value!r}: expected one of {', '.join(IDENTITY_MODES)}"
            )
        return value, source
    return None


def resolve(config: Config, chosen: tuple[str, str] | None) -> Identity:
    return Identity(*chosen) if chosen is not None else Identity(config.identity_mode, "configuration")


def ambient(namespace: Mapping[str, Any]) -> bool:
    return bool(label(namespace, AMBIENT_LABEL) == AMBIENT)


def check_supported(identity: Identity, kinds: Sequence[str]) -> None:
    """Token identity needs AuthorizationPolicy: Istio < 1.6's ServiceRoleBinding cannot forbid a header."""
    if identity.token and "ServiceRoleBinding" in kinds:
        raise ClientError(
            422,
            f"identity mode {identity.mode!r} ({identity.source}) needs AuthorizationPolicy (Istio >= 1.6); "
            "the controller declares ServiceRoleBinding (Istio < 1.6), which supports header mode only",
        )


def namespace_annotations(
    identity: Identity, on_ambient: bool, notice: Any, *, served: bool = True
) -> dict[str, str | None] | None:
    """The annotations the sync answer sets on the Namespace, or None to leave them as they are.

    ``served``: whether the namespace is one the decorator grants access to (a Profile with an owner).
    Only a change is sent (``notice`` is the current value), so a namespace that needs no notice gets
    the same answer as before this notice existed.
    """
    wanted = AMBIENT_HEADER_NOTICE if served and on_ambient and identity.mode == "header" else None
    if wanted == notice:
        return None
    return {NOTICE_ANNOTATION: wanted}


def namespace_labels(identity: Identity, current: Any, *, served: bool) -> dict[str, str | None] | None:
    """The labels the sync answer sets on the Namespace, or None to leave them as they are: the mode in
    effect on a namespace the decorator serves, no label on any other (the webhook then adds no token).
    ``current`` is the label's value now; only a change is sent."""
    wanted = identity.mode if served else None
    if wanted == current:
        return None
    return {MODE_LABEL: wanted}
