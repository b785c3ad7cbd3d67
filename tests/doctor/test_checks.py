"""Every check on a healthy snapshot finds nothing; a snapshot broken in exactly one way gives exactly
that finding (code and object)."""

from __future__ import annotations

import copy
import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import pytest

from doctor import codes
from doctor.diagnose import diagnose, facts
from doctor.findings import Ref, exit_status
from doctor.snapshot import Object, Snapshot, Unreadable, name_of
from hooks.identity import AMBIENT_LABEL, MODE_ANNOTATION, MODE_LABEL
from hooks.istio import ENVOY_FILTER_NAME, authorization_name
from tests.doctor import healthy
from tests.doctor.healthy import CONFIG, HEADER, HOOKS_NAMESPACE, HOOKS_SERVICE, TOKEN, WEBHOOK_NAMESPACE

CONFIGURATION = Ref("MutatingWebhookConfiguration", "kubeflow-extension")
WEBHOOK_SERVICE_REF = Ref("Service", healthy.WEBHOOK_SERVICE, WEBHOOK_NAMESPACE)
CONTROLLER = Ref("DecoratorController", "kubeflow-extension-profile-access")


def found(snapshot: Snapshot) -> set[tuple[str, Ref]]:
    return {(f.code, f.object) for f in diagnose(snapshot, CONFIG)}


def test_a_healthy_cluster_reports_nothing() -> None:
    assert diagnose(healthy.snapshot(), CONFIG) == []
    assert exit_status([]) == 0


def _edit(
    objects: tuple[Object, ...], name: str, change: Callable[[dict[str, Any]], None]
) -> tuple[Object, ...]:
    edited = []
    for obj in objects:
        copied = copy.deepcopy(dict(obj))
        if name_of(copied) == name:
            change(copied)
        edited.append(copied)
    return tuple(edited)


def _entries(s: Snapshot, change: Callable[[dict[str, Any]], None]) -> Snapshot:
    def each(configuration: dict[str, Any]) -> None:
        for entry in configuration["webhooks"]:
            change(entry)

    return dataclasses.replace(
        s, webhook_configurations=_edit(s.webhook_configurations, "kubeflow-extension", each)
    )


def _first_entry(s: Snapshot, change: Callable[[dict[str, Any]], None]) -> Snapshot:
    return dataclasses.replace(
        s,
        webhook_configurations=_edit(
            s.webhook_configurations, "kubeflow-extension", lambda c: change(c["webhooks"][0])
        ),
    )


def _without(objects: tuple[Object, ...], kind: str, name: str) -> tuple[Object, ...]:
    return tuple(o for o in objects if not (o.get("kind") == kind and name_of(o) == name))


def _namespace(s: Snapshot, name: str, change: Callable[[dict[str, Any]], None]) -> Snapshot:
    return dataclasses.replace(s, namespaces=_edit(s.namespaces, name, change))


def _workload_image(s: Snapshot, name: str, image: str) -> Snapshot:
    def change(w: dict[str, Any]) -> None:
        w["spec"]["template"]["spec"]["containers"][0]["image"] = image

    return dataclasses.replace(s, workloads=_edit(s.workloads, name, change))


def _workload_containers(s: Snapshot, name: str, container_images: list[str]) -> Snapshot:
    def change(w: dict[str, Any]) -> None:
        w["spec"]["template"]["spec"]["containers"] = [{"image": image} for image in container_images]

    return dataclasses.replace(s, workloads=_edit(s.workloads, name, change))


def _idle_old_metacontroller(s: Snapshot) -> Snapshot:
    idle = healthy.workload(
        "StatefulSet", "metacontroller", "kubeflow", "metacontroller/metacontroller:v0.3.0"
    )
    idle["status"] = {}
    return dataclasses.replace(s, workloads=(*s.workloads, idle))


def _nodes(*kubelets: str) -> Callable[[Snapshot], Snapshot]:
    nodes = tuple(healthy.node(f"node-{i}", kubelet) for i, kubelet in enumerate(kubelets))
    return lambda s: dataclasses.replace(s, nodes=nodes)


def _istiod_env(value: str) -> Callable[[Snapshot], Snapshot]:
    def change(w: dict[str, Any]) -> None:
        w["spec"]["template"]["spec"]["containers"][0]["env"] = [
            {"name": "ENABLE_NATIVE_SIDECARS", "value": value}
        ]

    return lambda s: dataclasses.replace(s, workloads=_edit(s.workloads, "istiod", change))


def _secret(**kwargs: Any) -> Callable[[Snapshot], Snapshot]:
    return lambda s: dataclasses.replace(s, secrets=(healthy.serving_secret(**kwargs),))


def _unready(namespace: str, name: str) -> Callable[[Snapshot], Snapshot]:
    slices = healthy.service(namespace, name, ready=False)[1]
    return lambda s: dataclasses.replace(
        s, endpoint_slices=(*_without(s.endpoint_slices, "EndpointSlice", f"{name}-abcde"), slices)
    )


def _later_webhook(s: Snapshot) -> Snapshot:
    later = {
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "zz-sidecar-injector"},
        "webhooks": [
            {
                "name": "inject.zz.example.com",
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                    }
                ],
            }
        ],
    }
    return dataclasses.replace(s, webhook_configurations=(*s.webhook_configurations, later))


def _drop_rule(resource: str) -> Callable[[Snapshot], Snapshot]:
    def change(role: dict[str, Any]) -> None:
        role["rules"] = [r for r in role["rules"] if resource not in r["resources"]]

    return lambda s: dataclasses.replace(
        s, cluster_roles=_edit(s.cluster_roles, "kubeflow-extension-metacontroller", change)
    )


def _label(name: str, key: str, value: str | None) -> Callable[[Snapshot], Snapshot]:
    def change(namespace: dict[str, Any]) -> None:
        labels = namespace["metadata"]["labels"]
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value

    return lambda s: _namespace(s, name, change)


def _legacy(s: Snapshot) -> Snapshot:
    def change(controller: dict[str, Any]) -> None:
        controller["spec"]["attachments"][0] = {
            "apiVersion": "rbac.istio.io/v1alpha1",
            "resource": "servicerolebindings",
        }

    return dataclasses.replace(
        _namespace_to_header(s), decorator_controllers=_edit(s.decorator_controllers, CONTROLLER.name, change)
    )


def _namespace_to_header(s: Snapshot) -> Snapshot:
    """Only header namespaces, so that the legacy overlay's token refusal does not blur the case."""
    return dataclasses.replace(
        s,
        namespaces=tuple(n for n in s.namespaces if name_of(n) != TOKEN),
        children=tuple(
            c for c in s.children if TOKEN not in name_of(c) and c["metadata"]["namespace"] != TOKEN
        ),
    )


def _legacy_children(s: Snapshot) -> Snapshot:
    s = _legacy(s)
    from hooks.desired import LEGACY_ISTIO, desired
    from hooks.identity import Identity

    profile = next(p for p in s.profiles if name_of(p) == HEADER)
    return dataclasses.replace(
        s, children=tuple(desired(HEADER, profile, LEGACY_ISTIO, CONFIG, identity=Identity("header", "t")))
    )


AUTHORIZATION = Ref("AuthorizationPolicy", authorization_name(HEADER), CONFIG.kubeflow_namespace)
ENVOY_FILTER = Ref("EnvoyFilter", ENVOY_FILTER_NAME, HEADER)
NS_HEADER, NS_TOKEN = Ref("Namespace", HEADER), Ref("Namespace", TOKEN)

BROKEN: dict[str, tuple[Callable[[Snapshot], Snapshot], set[tuple[str, Ref]]]] = {
    "unreadable": (
        lambda s: dataclasses.replace(
            s, unreadable=(Unreadable("/apis/apps/v1/deployments", None, "forbidden"),)
        ),
        {("KFX001", Ref("/apis/apps/v1/deployments", "*"))},
    ),
    "no webhook configuration": (
        lambda s: dataclasses.replace(s, webhook_configurations=()),
        {("KFX101", CONFIGURATION)},
    ),
    "an entry deleted": (
        lambda s: dataclasses.replace(
            s,
            webhook_configurations=_edit(
                s.webhook_configurations, "kubeflow-extension", lambda c: c["webhooks"].pop()
            ),
        ),
        {("KFX102", CONFIGURATION)},
    ),
    "trial pods may fail open": (
        lambda s: _first_entry(s, lambda e: e.update(failurePolicy="Ignore")),
        {("KFX103", CONFIGURATION)},
    ),
    "routing by mode removed": (
        lambda s: _first_entry(s, lambda e: e["namespaceSelector"]["matchExpressions"].pop()),
        {("KFX104", CONFIGURATION)},
    ),
    "matchConditions dropped": (
        lambda s: _first_entry(s, lambda e: e.pop("matchConditions")),
        {("KFX104", CONFIGURATION)},
    ),
    "caBundle removed": (
        lambda s: _entries(s, lambda e: e["clientConfig"].pop("caBundle")),
        {("KFX105", CONFIGURATION)},
    ),
    "no serving certificate": (
        lambda s: dataclasses.replace(s, secrets=()),
        {("KFX106", Ref("Secret", "kubeflow-extension-webhook-certificates", WEBHOOK_NAMESPACE))},
    ),
    "certificate from another CA": (_secret(ca=healthy.OTHER_CA), {("KFX107", CONFIGURATION)}),
    "certificate expired": (
        _secret(validity=datetime.timedelta(hours=12)),
        {("KFX108", WEBHOOK_SERVICE_REF)},
    ),
    "certificate expiring": (_secret(validity=datetime.timedelta(days=5)), {("KFX109", WEBHOOK_SERVICE_REF)}),
    "certificate for another name": (
        _secret(dns_names=("elsewhere.svc",)),
        {("KFX110", WEBHOOK_SERVICE_REF)},
    ),
    "webhook without ready endpoint": (
        _unready(WEBHOOK_NAMESPACE, healthy.WEBHOOK_SERVICE),
        {("KFX111", WEBHOOK_SERVICE_REF)},
    ),
    "a later webhook on pods": (
        _later_webhook,
        {("KFX112", Ref("MutatingWebhookConfiguration", "zz-sidecar-injector"))},
    ),
    "metacontroller not ready": (
        lambda s: dataclasses.replace(
            s, workloads=_edit(s.workloads, "metacontroller", lambda w: w.update(status={}))
        ),
        {("KFX201", Ref("StatefulSet", "metacontroller", "metacontroller"))},
    ),
    "metacontroller outside the cluster": (
        lambda s: dataclasses.replace(
            s, workloads=tuple(w for w in s.workloads if w["metadata"]["name"] != "metacontroller")
        ),
        {("KFX205", CONTROLLER)},
    ),
    "no decorator controller": (
        lambda s: dataclasses.replace(s, decorator_controllers=()),
        {("KFX202", CONTROLLER)},
    ),
    "hooks without ready endpoint": (
        _unready(HOOKS_NAMESPACE, HOOKS_SERVICE),
        {("KFX203", CONTROLLER)},
    ),
    "role without envoyfilters": (
        _drop_rule("envoyfilters"),
        {("KFX204", Ref("ServiceAccount", "metacontroller", "metacontroller"))},
    ),
    "authorization policy missing": (
        lambda s: dataclasses.replace(
            s, children=_without(s.children, "AuthorizationPolicy", AUTHORIZATION.name)
        ),
        {("KFX301", AUTHORIZATION)},
    ),
    "envoy filter missing": (
        lambda s: dataclasses.replace(
            s,
            children=tuple(
                c for c in s.children if (c["kind"], c["metadata"]["namespace"]) != ("EnvoyFilter", HEADER)
            ),
        ),
        {("KFX302", ENVOY_FILTER)},
    ),
    "envoy filter left in token mode": (
        lambda s: dataclasses.replace(
            s,
            children=(
                *s.children,
                {
                    **next(c for c in s.children if c["kind"] == "EnvoyFilter"),
                    "metadata": {
                        **next(c for c in s.children if c["kind"] == "EnvoyFilter")["metadata"],
                        "namespace": TOKEN,
                        "labels": {
                            **next(c for c in s.children if c["kind"] == "EnvoyFilter")["metadata"]["labels"],
                            "kubeflow-extension.kubeflow.org/namespace": TOKEN,
                        },
                    },
                },
            ),
        ),
        {("KFX303", Ref("EnvoyFilter", ENVOY_FILTER_NAME, TOKEN))},
    ),
    "annotation changed, label not yet": (
        lambda s: _namespace(
            s, TOKEN, lambda n: n["metadata"]["annotations"].update({MODE_ANNOTATION: "both"})
        ),
        {("KFX304", NS_TOKEN)},
    ),
    "label missing": (_label(HEADER, MODE_LABEL, None), {("KFX304", NS_HEADER)}),
    "bad annotation": (
        lambda s: _namespace(
            s, TOKEN, lambda n: n["metadata"]["annotations"].update({MODE_ANNOTATION: "tokens"})
        ),
        {("KFX304", NS_TOKEN)},
    ),
    "ambient in header mode": (
        lambda s: dataclasses.replace(
            _label(HEADER, AMBIENT_LABEL, "ambient")(s),
            children=tuple(
                c for c in s.children if (c["kind"], c["metadata"]["namespace"]) != ("EnvoyFilter", HEADER)
            ),
        ),
        {("KFX305", NS_HEADER)},
    ),
    "no default-editor": (
        lambda s: dataclasses.replace(
            s, service_accounts=tuple(a for a in s.service_accounts if a["metadata"]["namespace"] != TOKEN)
        ),
        {("KFX306", Ref("ServiceAccount", CONFIG.service_account, TOKEN))},
    ),
    "no katib injection label": (
        _label(HEADER, "katib.kubeflow.org/metrics-collector-injection", None),
        {("KFX307", NS_HEADER)},
    ),
    "kubernetes 1.27, which stored the configuration without its matchConditions": (
        lambda s: _entries(
            dataclasses.replace(s, server_version="v1.27.16"), lambda e: e.pop("matchConditions", None)
        ),
        {("KFX401", Ref("Cluster", "kubernetes"))},
    ),
    "token mode on kfp 1.5": (
        lambda s: _workload_image(s, "ml-pipeline", "gcr.io/ml-pipeline/api-server:1.5.0"),
        {("KFX402", NS_TOKEN)},
    ),
    "kubernetes 1.26, which has no matchConditions (the configuration could not be applied)": (
        lambda s: dataclasses.replace(s, server_version="v1.26.15"),
        {("KFX401", Ref("Cluster", "kubernetes"))},
    ),
    "metacontroller 0.3.0, as kubeflow 1.0-1.4 shipped it": (
        lambda s: _workload_image(s, "metacontroller", "metacontroller/metacontroller:v0.3.0"),
        {("KFX206", Ref("StatefulSet", "metacontroller", "metacontroller"))},
    ),
    "native sidecars forced with a kubelet 1.28": (
        _nodes("v1.30.2", "v1.28.5"),
        {("KFX405", Ref("Deployment", "istiod", "istio-system"))},
    ),
    "katib 0.8": (
        lambda s: _workload_image(
            s, "katib-controller", "gcr.io/kubeflow-images-public/katib/v1alpha3/katib-controller:v0.8.0"
        ),
        {("KFX406", Ref("Deployment", "katib-controller", "kubeflow"))},
    ),
    "katib 0.20": (
        lambda s: _workload_image(s, "katib-controller", "ghcr.io/kubeflow/katib/katib-controller:v0.20.0"),
        {("KFX406", Ref("Deployment", "katib-controller", "kubeflow"))},
    ),
    "legacy overlay on istio 1.22": (_legacy_children, {("KFX403", CONTROLLER)}),
    "current overlay on istio 1.12 without the old header form": (
        lambda s: _workload_image(s, "istiod", "docker.io/istio/pilot:1.12.9"),
        {("KFX404", CONTROLLER)},
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_cluster_broken_one_way_reports_exactly_that(case: str) -> None:
    breaks, expected = BROKEN[case]
    assert found(breaks(healthy.snapshot())) == expected


def test_every_code_has_a_broken_case() -> None:
    covered = {code for _, expected in BROKEN.values() for code, _ in expected}
    assert covered == {c.code for c in codes.CATALOGUE}


NOT_JUDGED: dict[str, Callable[[Snapshot], Snapshot]] = {
    "metacontroller 1.3.0, the first with the customize hook": lambda s: _workload_image(
        s, "metacontroller", "metacontrollerio/metacontroller:v1.3.0"
    ),
    "metacontroller by digest": lambda s: _workload_image(
        s, "metacontroller", "ghcr.io/metacontroller/metacontroller@sha256:" + "0" * 64
    ),
    "native sidecars on auto, istio checks the nodes itself": lambda s: _nodes("v1.28.5")(
        _istiod_env("auto")(s)
    ),
    "native sidecars forced, every kubelet 1.29 or later": _nodes("v1.29.0", "v1.37.2"),
    "ENABLE_NATIVE_SIDECARS=True on istio 1.27, which reads only 'true'": lambda s: _nodes("v1.28.5")(
        _istiod_env("True")(_workload_image(s, "istiod", "docker.io/istio/pilot:1.27.0"))
    ),
    "ENABLE_NATIVE_SIDECARS=1 on istio 1.22, whose template compares the string": lambda s: _nodes("v1.28.5")(
        _istiod_env("1")(s)
    ),
    "ENABLE_NATIVE_SIDECARS=true on istio 1.18, which does not read it": lambda s: _nodes("v1.28.5")(
        _workload_image(s, "istiod", "docker.io/istio/pilot:1.18.7")
    ),
    "katib 0.9 pinned by commit (kubeflow 1.1)": lambda s: _workload_image(
        s, "katib-controller", "gcr.io/kubeflow-images-public/katib/v1alpha3/katib-controller:917164a"
    ),
    "metacontroller behind a sidecar whose tag is an older release": lambda s: _workload_containers(
        s,
        "metacontroller",
        ["gcr.io/kubebuilder/kube-rbac-proxy:v0.13.1", "metacontrollerio/metacontroller:v2.0.4"],
    ),
    "an idle metacontroller 0.3.0 left beside a ready 4.17.2": _idle_old_metacontroller,
    "kubernetes 1.27 with AdmissionWebhookMatchConditions on: the conditions kept and run": lambda s: (
        dataclasses.replace(s, server_version="v1.27.16")
    ),
    "katib 0.9.0": lambda s: _workload_image(
        s, "katib-controller", "docker.io/kubeflowkatib/katib-controller:v0.9.0"
    ),
}
"""Versions the checks must leave alone: at the boundaries, or not a release they can read."""


@pytest.mark.parametrize("case", sorted(NOT_JUDGED))
def test_versions_that_are_fine_or_unknown_report_nothing(case: str) -> None:
    assert found(NOT_JUDGED[case](healthy.snapshot())) == set()


def test_only_the_named_namespaces_are_checked() -> None:
    broken = _label(TOKEN, MODE_LABEL, "header")(healthy.snapshot())
    assert diagnose(broken, CONFIG, only=[HEADER]) == []
    assert facts(broken, CONFIG)["profile namespaces"] == 2


def test_exit_status_tells_errors_from_warnings() -> None:
    expiring = BROKEN["certificate expiring"][0](healthy.snapshot())
    assert exit_status(diagnose(expiring, CONFIG)) == 2
    assert exit_status(diagnose(dataclasses.replace(expiring, webhook_configurations=()), CONFIG)) == 1


def test_the_readme_explains_every_code() -> None:
    readme = (healthy.ROOT / "README.md").read_text()
    section = readme[readme.index("### Diagnosing a cluster: doctor") :]
    assert all(f"| `{c.code}` | {c.severity} |" in section for c in codes.CATALOGUE)
