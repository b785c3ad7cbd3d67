"""Each profile namespace: the identity mode in effect, the children that mode needs (and no others), the
service account trial Jobs run as, and Katib's injection label.

What a namespace should have is asked of the hooks' own functions (``hooks.identity``,
``hooks.desired``), so doctor and the hooks cannot disagree about it.
"""

from __future__ import annotations

from doctor import codes
from doctor.checks import metacontroller
from doctor.findings import Finding, Ref
from doctor.profiles import ProfileNamespace, served_namespaces
from doctor.snapshot import Object, Snapshot, find, images, labels_of, name_of, namespace_of, ref
from hooks import identity
from hooks.desired import CURRENT_ISTIO, AttachmentType, desired, supported_types
from hooks.istio import MANAGED_BY, NAMESPACE_LABEL
from service.config import IDENTITY_MODES, Config
from service.http import ClientError

KATIB_INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
"""Katib's Pod webhook only injects its metrics collector in namespaces labelled ``enabled``."""
KATIB_CONTROLLER = "katib-controller"


def identity_of(target: ProfileNamespace, config: Config) -> identity.Identity:
    """The mode the hooks last applied: their label, which the children and the webhook's routing follow
    (so a stale label is one finding, KFX304, not one per child); an annotation's or the default while
    the namespace is not labelled yet."""
    label = identity.label(target.namespace, identity.MODE_LABEL)
    if label in IDENTITY_MODES:
        return identity.Identity(str(label), "label")
    try:
        chosen = identity.override(target.namespace, target.profile)
    except ClientError:
        chosen = None
    return identity.resolve(config, chosen)


def check_mode_label(snapshot: Snapshot, config: Config) -> list[Finding]:
    findings = []
    for target in served_namespaces(snapshot, config):
        label = identity.label(target.namespace, identity.MODE_LABEL)
        try:
            chosen = identity.override(target.namespace, target.profile)
        except ClientError as error:
            findings.append(codes.MODE_LABEL_DISAGREES.at(target.ref, error.message))
            continue
        if chosen is not None and label != chosen[0]:
            message = f"labelled {label!r} but its {chosen[1]} says {chosen[0]!r}"
            findings.append(codes.MODE_LABEL_DISAGREES.at(target.ref, message))
        elif chosen is None and label not in IDENTITY_MODES:
            findings.append(codes.MODE_LABEL_DISAGREES.at(target.ref, f"{identity.MODE_LABEL} is {label!r}"))
    return findings


def attachment_types(snapshot: Snapshot) -> tuple[AttachmentType, ...]:
    """What our DecoratorController declares (the overlay chose it); the default overlay's without one."""
    for controller in metacontroller.decorator_controllers(snapshot):
        declared = [
            (str(a.get("apiVersion")), str(a.get("resource")))
            for a in (controller.get("spec") or {}).get("attachments") or []
        ]
        return supported_types(declared)
    return CURRENT_ISTIO


def _key(obj: Object) -> tuple[str, str, str | None]:
    return str(obj.get("kind")), name_of(obj), namespace_of(obj)


def _children(snapshot: Snapshot, namespace: str) -> list[Object]:
    ((key, value),) = MANAGED_BY.items()
    return [
        c
        for c in snapshot.children
        if labels_of(c).get(key) == value and labels_of(c).get(NAMESPACE_LABEL) == namespace
    ]


def check_children(snapshot: Snapshot, config: Config) -> list[Finding]:
    types = attachment_types(snapshot)
    findings = []
    for target in served_namespaces(snapshot, config):
        try:
            wanted = desired(
                target.name,
                target.profile,
                types,
                config,
                identity=identity_of(target, config),
                on_ambient=identity.ambient(target.namespace),
            )
        except ClientError as error:
            findings.append(codes.OVERLAY_MISMATCH.at(target.ref, error.message))
            continue
        present = {_key(c) for c in _children(snapshot, target.name)}
        for wanted_child in wanted:
            kind, name, namespace = _key(wanted_child)
            if (kind, name, namespace) not in present:
                code = codes.ENVOY_FILTER_MISSING if kind == "EnvoyFilter" else codes.AUTHORIZATION_MISSING
                findings.append(code.at(Ref(kind, name, namespace), f"missing for namespace {target.name}"))
        for child in _children(snapshot, target.name):
            if _key(child) not in {_key(w) for w in wanted}:
                message = (
                    f"not called for by namespace {target.name} in mode {identity_of(target, config).mode}"
                )
                findings.append(codes.STALE_CHILD.at(ref(child), message))
    return findings


def check_ambient(snapshot: Snapshot, config: Config) -> list[Finding]:
    findings = []
    for target in served_namespaces(snapshot, config):
        chosen = identity_of(target, config)
        notice = identity.namespace_annotations(chosen, identity.ambient(target.namespace), None)
        if notice and notice.get(identity.NOTICE_ANNOTATION):
            findings.append(
                codes.AMBIENT_HEADER.at(target.ref, f"mode {chosen.mode} ({chosen.source}) on ambient")
            )
    return findings


def check_service_account(snapshot: Snapshot, config: Config) -> list[Finding]:
    return [
        codes.SERVICE_ACCOUNT_MISSING.at(
            Ref("ServiceAccount", config.service_account, target.name), "not found"
        )
        for target in served_namespaces(snapshot, config)
        if find(snapshot.service_accounts, config.service_account, target.name) is None
    ]


def katib_installed(snapshot: Snapshot) -> bool:
    return any(
        name_of(w) == KATIB_CONTROLLER or any(KATIB_CONTROLLER in i for i in images(w))
        for w in snapshot.workloads
    )


def check_katib_label(snapshot: Snapshot, config: Config) -> list[Finding]:
    if not katib_installed(snapshot):
        return []
    return [
        codes.KATIB_INJECTION_LABEL.at(target.ref, f"{KATIB_INJECTION_LABEL} is {value!r}")
        for target in served_namespaces(snapshot, config)
        if (value := labels_of(target.namespace).get(KATIB_INJECTION_LABEL)) != "enabled"
    ]
