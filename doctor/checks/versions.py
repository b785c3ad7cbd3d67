"""Versions read from the cluster against the README's compatibility table."""

from __future__ import annotations

from collections.abc import Iterable

from doctor import codes, profiles
from doctor.checks import metacontroller, namespaces, webhook
from doctor.findings import Finding, Ref
from doctor.snapshot import Object, Snapshot, kubernetes_version, minor_version, name_of, ref, tagged_release
from hooks.desired import HEADER_FORM_ANNOTATION, old_header_form
from service.config import Config

KFP_TOKEN = (1, 7)
ISTIO_AUTHORIZATION_POLICY = (1, 6)
ISTIO_APPEND_ACTION = (1, 15)
NATIVE_SIDECARS = (1, 29)
"""SidecarContainers: alpha and off in 1.28, beta and on from 1.29 (pkg/features/kube_features.go
@v1.28.0, @v1.29.0)."""
KATIB_TESTED = ((0, 9), (0, 19))
"""The README's compatibility table: the collectors' arguments are checked against these releases."""
ISTIOD, ML_PIPELINE = "istiod", "ml-pipeline"
NATIVE_SIDECARS_ENV = "ENABLE_NATIVE_SIDECARS"
"""istiod's setting, read from 1.19 on. Exactly "true" forces native sidecars on every node: 1.19-1.26's
injection template compares the string (manifests/charts/istio-control/istio-discovery/files/
injection-template.yaml@1.19.0: ``eq (env "ENABLE_NATIVE_SIDECARS" "false") "true"``), and 1.27's
"auto" default uses them only where every kubelet is >= 1.33 (pilot/pkg/features/pilot.go and
pkg/kube/inject/webhook.go DetectNativeSidecar @1.27.0)."""
ISTIO_READS_NATIVE_SIDECARS = (1, 19)


def workload(workloads: Iterable[Object], name: str) -> Object | None:
    return next((w for w in workloads if name_of(w) == name), None)


def image_release(snapshot: Snapshot, name: str) -> tuple[int, int, int] | None:
    found = workload(snapshot.workloads, name)
    return tagged_release(found) if found else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def check_kubernetes(snapshot: Snapshot, config: Config) -> list[Finding]:
    """1.27 is judged by what the server did: with its alpha gate on it keeps the conditions and runs
    them. Older releases do not know the field at all."""
    version = kubernetes_version(snapshot)
    if version is not None and version < webhook.MATCH_CONDITIONS_FIELD:
        message = f"server {snapshot.server_version} has no matchConditions field"
    elif webhook.match_conditions_dropped(snapshot):
        message = (
            f"server {snapshot.server_version} stored the webhook configuration without its matchConditions"
        )
    else:
        return []
    return [codes.KUBERNETES_TOO_OLD.at(Ref("Cluster", "kubernetes"), message)]


def check_kfp_for_token(snapshot: Snapshot, config: Config) -> list[Finding]:
    kfp = image_release(snapshot, ML_PIPELINE)
    if kfp is None or kfp[:2] >= KFP_TOKEN:
        return []
    return [
        codes.KFP_TOO_OLD_FOR_TOKEN.at(
            target.ref, f"mode {mode.mode} ({mode.source}), ml-pipeline {_dotted(kfp)}"
        )
        for target in profiles.served_namespaces(snapshot, config)
        if (mode := namespaces.identity_of(target, config)).token
    ]


def check_istio(snapshot: Snapshot, config: Config) -> list[Finding]:
    istio = image_release(snapshot, ISTIOD)
    if istio is None:
        return []
    findings = []
    for controller in metacontroller.decorator_controllers(snapshot):
        types = namespaces.attachment_types(snapshot)
        legacy = any(t.kind == "ServiceRoleBinding" for t in types)
        if legacy != (istio[:2] < ISTIO_AUTHORIZATION_POLICY):
            kind = "ServiceRoleBinding" if legacy else "AuthorizationPolicy"
            findings.append(codes.OVERLAY_MISMATCH.at(ref(controller), f"{kind} on Istio {_dotted(istio)}"))
            continue
        annotation = ((controller.get("metadata") or {}).get("annotations") or {}).get(HEADER_FORM_ANNOTATION)
        if istio[:2] < ISTIO_APPEND_ACTION and not old_header_form(types, annotation):
            findings.append(
                codes.HEADER_FORM_MISMATCH.at(ref(controller), f"append_action on Istio {_dotted(istio)}")
            )
    return findings


def _environment(workload: Object) -> dict[str, str]:
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {
        str(variable.get("name")): str(variable.get("value", ""))
        for container in spec.get("containers") or []
        for variable in container.get("env") or []
    }


def forcing_native_sidecars(workloads: Iterable[Object]) -> Object | None:
    """istiod, when it puts every proxy in a native sidecar whatever the node (a release tag that names
    no version is taken to read the setting)."""
    istiod = workload(workloads, ISTIOD)
    if istiod is None or _environment(istiod).get(NATIVE_SIDECARS_ENV) != "true":
        return None
    version = tagged_release(istiod)
    return None if version is not None and version[:2] < ISTIO_READS_NATIVE_SIDECARS else istiod


def check_native_sidecars(snapshot: Snapshot, config: Config) -> list[Finding]:
    """Nodes are read only when this can matter (doctor/read.py), so a snapshot without them passes."""
    istiod = forcing_native_sidecars(snapshot.workloads)
    if istiod is None:
        return []
    old = sorted(
        f"{name_of(node)} ({kubelet})"
        for node in snapshot.nodes
        if (kubelet := ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion"))
        and (version := minor_version(str(kubelet))) is not None
        and version < NATIVE_SIDECARS
    )
    if not old:
        return []
    return [codes.NATIVE_SIDECARS_ON_OLD_NODES.at(ref(istiod), f"kubelet < 1.29 on {', '.join(old)}")]


def check_katib(snapshot: Snapshot, config: Config) -> list[Finding]:
    """A tag that names no release (Kubeflow 1.1 and 1.2 pinned Katib by commit) is not judged."""
    katib = workload(snapshot.workloads, namespaces.KATIB_CONTROLLER)
    version = tagged_release(katib) if katib else None
    oldest, newest = KATIB_TESTED
    if katib is None or version is None or oldest <= version[:2] <= newest:
        return []
    return [codes.KATIB_UNTESTED.at(ref(katib), f"Katib {_dotted(version)}")]
