"""Metacontroller running, our DecoratorController wired to reachable hooks, and allowed what it needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from doctor import codes, services, shipped
from doctor.findings import Finding, Ref
from doctor.profiles import served_namespaces
from doctor.snapshot import Object, Snapshot, images, labels_of, name_of, namespace_of, ref, tagged_release
from hooks import identity
from service.config import Config

HOOKS = ("customize", "sync")
CHILD_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
PARENT_VERBS = ("get", "list", "watch", "update")
"""`update`: the sync answer sets the effective-identity-mode label on the parent Namespace."""
RELATED_VERBS = ("get", "list", "watch")


def metacontrollers(snapshot: Snapshot) -> list[Object]:
    return [w for w in snapshot.workloads if any("metacontroller" in image for image in images(w))]


def _ready(workload: Object) -> bool:
    return int((workload.get("status") or {}).get("readyReplicas") or 0) > 0


def at_work(snapshot: Snapshot) -> list[Object]:
    """The ready Metacontrollers, or every one found when none is: an idle leftover of an older install
    beside a ready one is not the Metacontroller at work."""
    found = metacontrollers(snapshot)
    return [w for w in found if _ready(w)] or found


def _labelled_by_a_sync(snapshot: Snapshot, config: Config) -> bool:
    """Every profile namespace the hooks serve has the mode label, which only a Metacontroller sync sets."""
    served = list(served_namespaces(snapshot, config))
    return bool(served) and all(identity.label(t.namespace, identity.MODE_LABEL) for t in served)


def check_running(snapshot: Snapshot, config: Config) -> list[Finding]:
    found = metacontrollers(snapshot)
    if any(_ready(w) for w in found):
        return []
    if found:
        return [codes.METACONTROLLER_NOT_RUNNING.at(ref(w), "no ready replica") for w in found]
    if _labelled_by_a_sync(snapshot, config):
        return [
            codes.METACONTROLLER_OUTSIDE.at(
                Ref("DecoratorController", shipped.DECORATOR_CONTROLLER),
                "no Deployment or StatefulSet runs a metacontroller image, but the profile namespaces "
                "are labelled: it runs outside the cluster",
            )
        ]
    return [
        codes.METACONTROLLER_NOT_RUNNING.at(
            Ref("StatefulSet", "metacontroller", "metacontroller"),
            "no Deployment or StatefulSet runs a metacontroller image",
        )
    ]


CUSTOMIZE_HOOK = (1, 3, 0)
"""The first release whose DecoratorControllerHooks has Customize: apis/metacontroller/v1alpha1/types.go
@v1.3.0 (v0.3.0 to v1.2.1 have only Sync and Finalize). Before it the hooks get no related Profile.
Kubeflow up to 1.4 shipped v0.3.0 (kubeflow/manifests apps/pipeline/upstream/third-party/metacontroller/
base/stateful-set.yaml@v1.4.0); 1.5 ships v2.0.4."""


def check_version(snapshot: Snapshot, config: Config) -> list[Finding]:
    """The release in the metacontroller image's tag (not a sidecar's); a digest or a tag that names no
    release is not judged. Where one Metacontroller is ready, only the ready ones are: an idle leftover of
    an older install is not the one running."""
    findings = []
    for workload in at_work(snapshot):
        version = tagged_release(workload, "metacontroller")
        if version is not None and version < CUSTOMIZE_HOOK:
            dotted = ".".join(map(str, version))
            findings.append(codes.METACONTROLLER_TOO_OLD.at(ref(workload), f"Metacontroller {dotted}"))
    return findings


def decorator_controllers(snapshot: Snapshot) -> list[Object]:
    """Ours: the shipped name, or anything our kustomizations labelled (a renamed copy)."""
    key, value = shipped.PART_OF
    return [
        c
        for c in snapshot.decorator_controllers
        if name_of(c) == shipped.DECORATOR_CONTROLLER or labels_of(c).get(key) == value
    ]


def _hooks(controller: Object) -> Mapping[str, Any]:
    return (controller.get("spec") or {}).get("hooks") or {}


def check_decorator_controller(snapshot: Snapshot, config: Config) -> list[Finding]:
    controllers = decorator_controllers(snapshot)
    if not controllers:
        missing = Ref("DecoratorController", shipped.DECORATOR_CONTROLLER)
        return [codes.DECORATOR_CONTROLLER_MISSING.at(missing, "not found")]
    findings = []
    for controller in controllers:
        for hook in HOOKS:
            target = (_hooks(controller).get(hook) or {}).get("webhook") or {}
            if not target:
                findings.append(codes.DECORATOR_CONTROLLER_MISSING.at(ref(controller), f"no {hook} hook"))
            service = target.get("service")
            if not service:
                continue  # a URL: nothing in the cluster to look at
            namespace = str(service.get("namespace") or namespace_of(controller) or "default")
            problem = services.problem(snapshot, namespace, str(service.get("name")))
            if problem:
                findings.append(codes.HOOKS_SERVICE_UNREADY.at(ref(controller), f"{hook} hook: {problem}"))
    return findings


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


Need = tuple[str, str, tuple[str, ...]]


def needed(controller: Object) -> list[Need]:
    """(group, resource, verbs) Metacontroller needs to run the controller."""
    spec = controller.get("spec") or {}
    wanted: list[Need] = [
        (_group(str(r.get("apiVersion"))), str(r.get("resource")), PARENT_VERBS)
        for r in spec.get("resources") or []
    ]
    wanted += [
        (_group(str(a.get("apiVersion"))), str(a.get("resource")), CHILD_VERBS)
        for a in spec.get("attachments") or []
    ]
    return [*wanted, ("kubeflow.org", "profiles", RELATED_VERBS)]


def _subject_matches(subject: Mapping[str, Any], namespace: str, name: str) -> bool:
    if subject.get("kind") == "ServiceAccount":
        return subject.get("name") == name and subject.get("namespace") == namespace
    groups = {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"}
    return subject.get("kind") == "Group" and subject.get("name") in groups


def granted_rules(snapshot: Snapshot, namespace: str, name: str) -> list[Mapping[str, Any]]:
    """The rules of every ClusterRole bound cluster-wide to the service account."""
    roles = {
        str((b.get("roleRef") or {}).get("name"))
        for b in snapshot.cluster_role_bindings
        if (b.get("roleRef") or {}).get("kind") == "ClusterRole"
        and any(_subject_matches(s, namespace, name) for s in b.get("subjects") or [])
    }
    return [rule for r in snapshot.cluster_roles if name_of(r) in roles for rule in r.get("rules") or []]


def _allows(rules: Iterable[Mapping[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        set(rule.get("apiGroups") or []) & {group, "*"}
        and set(rule.get("resources") or []) & {resource, "*"}
        and set(rule.get("verbs") or []) & {verb, "*"}
        and not rule.get("resourceNames")
        for rule in rules
    )


def check_permissions(snapshot: Snapshot, config: Config) -> list[Finding]:
    chosen = at_work(snapshot)
    if not chosen:
        return []  # KFX201 says so; whose permissions to check is unknown
    pod_spec = ((chosen[0].get("spec") or {}).get("template") or {}).get("spec") or {}
    namespace, account = (
        namespace_of(chosen[0]) or "default",
        str(pod_spec.get("serviceAccountName") or "default"),
    )
    rules = granted_rules(snapshot, namespace, account)
    findings = []
    for controller in decorator_controllers(snapshot):
        for group, resource, verbs in needed(controller):
            missing = [verb for verb in verbs if not _allows(rules, group, resource, verb)]
            if missing:
                findings.append(
                    codes.METACONTROLLER_FORBIDDEN.at(
                        Ref("ServiceAccount", account, namespace),
                        f"may not {', '.join(missing)} {resource}.{group or 'core'} ({name_of(controller)})",
                    )
                )
    return findings
