"""``kubeflow-extension doctor`` on the real kube-apiserver, run as a user bound only to the shipped
read-only ClusterRole (doctor/rbac/): the shipped manifests with the local hooks and webhook report
nothing, and each setup broken in one way reports exactly that code on that object.

The local control plane runs Metacontroller as a process and no Pods: the peers doctor reads versions from
(Metacontroller, istiod, ml-pipeline, Katib's controller) stand here as their workloads, with their
upstream names and images, as doctor would find them in a cluster (e2e/framework/peer_workloads.py). The
DecoratorController selects only this module's namespace. The codes a URL-called webhook cannot show (its
Service, Secret and certificate: KFX106-KFX111) are broken on the deployed product in
e2e/scenarios/test_doctor_in_cluster.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, LocalService
from e2e.framework import peer_workloads, versions
from e2e.framework.doctor import role_for, until, user_kubeconfig
from e2e.framework.doctor import run as run_doctor
from e2e.framework.manifests import Document
from e2e.framework.objects import profile_objects
from hooks.identity import AMBIENT, AMBIENT_LABEL, MODE_ANNOTATION, MODE_LABEL
from hooks.istio import ENVOY_FILTER_NAME, authorization_name

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-doctor-alice"
SELECTED = "e2e.kubeflow-extension/doctor"
USER = "e2e-doctor"
CONTROLLER = "kubeflow-extension-profile-access"
CONFIGURATION = "kubeflow-extension"
MWC = "MutatingWebhookConfiguration"
POLICY = "authorizationpolicies.security.istio.io"
FILTER = "envoyfilters.networking.istio.io"
KATIB_LABEL = "katib.kubeflow.org/metrics-collector-injection"

Found = set[tuple[str, str, str | None, str]]
"""(code, kind, namespace, name) of each finding."""
Expected = tuple[int, Found]
"""doctor's exit status and findings."""


@dataclass
class Setup:
    kubectl: Kubectl
    kubeconfig: Path
    hooks: LocalService
    manifests: list[Document]
    """Everything the module applied: re-applied after each broken setup."""

    def restore(self) -> None:
        if not self.hooks.alive:
            self.hooks.start()
        self.kubectl.apply(self.manifests)
        peer_workloads.mark_ready(self.kubectl)


def deploy(control_plane: ControlPlane, directory: Path) -> Setup:
    """The shipped kustomizations (hooks and webhook local), the peers' workloads, one profile namespace
    as Kubeflow's profile controller makes it, and a kubeconfig (in ``directory``) of a user bound to
    doctor's ClusterRole only."""
    kubectl = control_plane.kubectl
    hooks = control_plane.start_service("hooks-doctor", "hooks.app:app")
    webhook = control_plane.start_service("webhook-doctor", "webhook.app:app", tls=True)
    controllers = control_plane.localized_manifests(REPO_ROOT / "metacontroller", hooks=hooks)
    for document in controllers:
        if document["kind"] == "DecoratorController":
            (resource,) = document["spec"]["resources"]
            resource["labelSelector"]["matchLabels"][SELECTED] = "yes"
    webhooks = control_plane.localized_manifests(
        REPO_ROOT / "webhook" / "self-managed-certificates", webhook=webhook
    )
    profile, namespace, account = profile_objects(NAMESPACE, "alice@example.com")
    namespace["metadata"]["labels"] |= {SELECTED: "yes", KATIB_LABEL: "enabled"}
    manifests = [
        *peer_workloads.stand_ins(),
        *controllers,
        *webhooks,
        *role_for(kubectl, USER),
        profile,
        namespace,
        account,
    ]
    kubectl.apply(manifests)
    peer_workloads.mark_ready(kubectl)
    kubeconfig = user_kubeconfig(control_plane, USER, directory / "kubeconfig")
    return Setup(kubectl, kubeconfig, hooks, manifests)


@pytest.fixture(scope="module")
def setup(
    control_plane: ControlPlane, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    yield deploy(control_plane, tmp_path_factory.mktemp("doctor"))
    kubectl.run("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    kubectl.run("delete", "profile", NAMESPACE, "--ignore-not-found")
    kubectl.run("delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found")
    kubectl.run("delete", "decoratorcontroller", CONTROLLER, "--ignore-not-found")
    kubectl.run("delete", "clusterrolebinding", USER, "--ignore-not-found")
    peer_workloads.delete(kubectl)


def doctor(kubeconfig: Path) -> Expected:
    """Exit status and findings, for this module's namespace."""
    status, findings = run_doctor(kubeconfig, "-n", NAMESPACE)
    assert status in (0, 1, 2), status
    found = {
        (f["code"], f["object"]["kind"], f["object"]["namespace"], f["object"]["name"]) for f in findings
    }
    return status, found


def settles_on(kubeconfig: Path, expected: Expected, timeout: float = 90) -> None:
    """doctor reports ``expected``, at once or once Metacontroller and the hooks have acted, and again on
    the next run (a passing state, not a moment)."""
    assert until(lambda: doctor(kubeconfig), expected, timeout) == expected
    assert doctor(kubeconfig) == expected


HEALTHY: Expected = (0, set())


def test_the_shipped_setup_reports_nothing(setup: Setup) -> None:
    settles_on(setup.kubeconfig, HEALTHY)
    # What doctor passed is really there: the children and the label, read with the admin's account.
    kubectl = setup.kubectl
    assert kubectl.get(POLICY, authorization_name(NAMESPACE), "kubeflow") is not None
    assert kubectl.get(FILTER, ENVOY_FILTER_NAME, NAMESPACE) is not None
    assert kubectl("get", "namespace", NAMESPACE)["metadata"]["labels"][MODE_LABEL] == "header"


# -- each setup broken in one way ---------------------------------------------------------------------

Breakage = Callable[[Setup], AbstractContextManager[Expected]]
BREAKAGES: dict[str, Breakage] = {}


def breakage(code: str) -> Callable[[Callable[[Setup], Iterator[Expected]]], Breakage]:
    """Register a context manager that breaks the setup one way and yields what doctor must report; the
    test restores the rest (re-applies the manifests, starts the hooks)."""

    def register(function: Callable[[Setup], Iterator[Expected]]) -> Breakage:
        managed = contextmanager(function)
        BREAKAGES[f"{code}-{function.__name__}"] = managed
        return managed

    return register


def json_patch(kubectl: Kubectl, resource: str, name: str, ops: list[dict[str, Any]], *scope: str) -> None:
    kubectl.run("patch", resource, name, *scope, "--type=json", "-p", json.dumps(ops))


@contextmanager
def namespace_marked(s: Setup, verb: str, key: str, value: str) -> Iterator[None]:
    """The namespace annotated or labelled (``verb``) ``key=value`` for the block, then without it."""
    s.kubectl.run(verb, "namespace", NAMESPACE, f"{key}={value}", "--overwrite")
    try:
        yield
    finally:
        s.kubectl.run(verb, "namespace", NAMESPACE, f"{key}-")


def in_profile(code: str, kind: str, name: str, namespace: str | None = None) -> Found:
    return {(code, kind, namespace, name)}


@breakage("KFX101")
def webhook_configuration_deleted(s: Setup) -> Iterator[Expected]:
    s.kubectl.run("delete", "mutatingwebhookconfiguration", CONFIGURATION)
    yield 1, in_profile("KFX101", MWC, CONFIGURATION)


@breakage("KFX102")
def webhook_entry_removed(s: Setup) -> Iterator[Expected]:
    json_patch(
        s.kubectl, "mutatingwebhookconfiguration", CONFIGURATION, [{"op": "remove", "path": "/webhooks/5"}]
    )
    yield 1, in_profile("KFX102", MWC, CONFIGURATION)


@breakage("KFX103")
def failure_policy_changed(s: Setup) -> Iterator[Expected]:
    configuration = s.kubectl("get", "mutatingwebhookconfiguration", CONFIGURATION)
    other = {"Fail": "Ignore", "Ignore": "Fail"}[configuration["webhooks"][0]["failurePolicy"]]
    op = {"op": "replace", "path": "/webhooks/0/failurePolicy", "value": other}
    json_patch(s.kubectl, "mutatingwebhookconfiguration", CONFIGURATION, [op])
    yield 1, in_profile("KFX103", MWC, CONFIGURATION)


@breakage("KFX104")
def namespace_selector_removed(s: Setup) -> Iterator[Expected]:
    """Every namespace's Pods would reach the first entry, profile or not, whatever its mode label."""
    op = {"op": "replace", "path": "/webhooks/0/namespaceSelector", "value": {}}
    json_patch(s.kubectl, "mutatingwebhookconfiguration", CONFIGURATION, [op])
    yield 1, in_profile("KFX104", MWC, CONFIGURATION)


@breakage("KFX105")
def ca_bundle_removed(s: Setup) -> Iterator[Expected]:
    configuration = s.kubectl("get", "mutatingwebhookconfiguration", CONFIGURATION)
    ops = [
        {"op": "remove", "path": f"/webhooks/{i}/clientConfig/caBundle"}
        for i in range(len(configuration["webhooks"]))
    ]
    json_patch(s.kubectl, "mutatingwebhookconfiguration", CONFIGURATION, ops)
    yield 1, in_profile("KFX105", MWC, CONFIGURATION)


@breakage("KFX112")
def a_later_pod_webhook(s: Setup) -> Iterator[Expected]:
    """A sidecar injector of another project, named so that it sorts after ours, for every namespace."""
    later = "zz-e2e-doctor-injector"
    s.kubectl.apply(
        [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": MWC,
                "metadata": {"name": later},
                "webhooks": [
                    {
                        "name": "inject.e2e.invalid",
                        "clientConfig": {"url": "https://127.0.0.1:9/inject"},
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["pods"],
                            }
                        ],
                        "namespaceSelector": {"matchLabels": {SELECTED: "yes"}},
                        "failurePolicy": "Ignore",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                    }
                ],
            }
        ]
    )
    try:
        yield 2, in_profile("KFX112", MWC, later)
    finally:
        s.kubectl.run("delete", "mutatingwebhookconfiguration", later)


@breakage("KFX201")
def metacontroller_not_ready(s: Setup) -> Iterator[Expected]:
    peer_workloads.mark_ready(s.kubectl, ready=0)
    yield 1, in_profile("KFX201", "StatefulSet", peer_workloads.METACONTROLLER, peer_workloads.METACONTROLLER)


@breakage("KFX202")
def decorator_controller_without_customize_hook(s: Setup) -> Iterator[Expected]:
    """With the hooks stopped, so that no sync changes the children meanwhile."""
    s.hooks.stop()
    json_patch(
        s.kubectl, "decoratorcontroller", CONTROLLER, [{"op": "remove", "path": "/spec/hooks/customize"}]
    )
    yield 1, in_profile("KFX202", "DecoratorController", CONTROLLER)


@breakage("KFX203")
def hooks_behind_a_service_without_endpoints(s: Setup) -> Iterator[Expected]:
    name, namespace = "kubeflow-extension-hooks", "kubeflow-extension"
    service = {"name": name, "namespace": namespace, "port": 80}
    s.kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }
        ]
    )
    original = s.kubectl("get", "decoratorcontroller", CONTROLLER)["spec"]["hooks"]["sync"]["webhook"]

    def sync_hook(webhook: dict[str, Any]) -> None:
        op = {"op": "replace", "path": "/spec/hooks/sync/webhook", "value": webhook}
        json_patch(s.kubectl, "decoratorcontroller", CONTROLLER, [op])

    sync_hook({"service": service, "path": "/sync", "timeout": "10s"})
    try:
        yield 1, in_profile("KFX203", "DecoratorController", CONTROLLER)
    finally:
        sync_hook(original)  # a whole value: re-applying would leave the service beside the URL
        s.kubectl.run("delete", "service", name, "-n", namespace)


@breakage("KFX204")
def metacontroller_role_unbound(s: Setup) -> Iterator[Expected]:
    s.kubectl.run("delete", "clusterrolebinding", "kubeflow-extension-metacontroller")
    yield (
        1,
        in_profile("KFX204", "ServiceAccount", peer_workloads.METACONTROLLER, peer_workloads.METACONTROLLER),
    )


@breakage("KFX205")
def metacontroller_outside_the_cluster(s: Setup) -> Iterator[Expected]:
    """The local control plane's own case: Metacontroller runs as a process, no workload stands for it."""
    peer_workloads.delete(s.kubectl, peer_workloads.METACONTROLLER)
    yield 2, in_profile("KFX205", "DecoratorController", CONTROLLER)


@breakage("KFX206")
def metacontroller_too_old(s: Setup) -> Iterator[Expected]:
    peer_workloads.set_image(s.kubectl, peer_workloads.METACONTROLLER, peer_workloads.OLD_METACONTROLLER)
    yield 1, in_profile("KFX206", "StatefulSet", peer_workloads.METACONTROLLER, peer_workloads.METACONTROLLER)


@breakage("KFX301")
def authorization_policy_deleted(s: Setup) -> Iterator[Expected]:
    """With the hooks down, Metacontroller cannot put it back."""
    s.hooks.stop()
    s.kubectl.run("delete", POLICY, authorization_name(NAMESPACE), "-n", "kubeflow")
    yield 1, in_profile("KFX301", "AuthorizationPolicy", authorization_name(NAMESPACE), "kubeflow")


@breakage("KFX302")
def envoy_filter_deleted(s: Setup) -> Iterator[Expected]:
    s.hooks.stop()
    s.kubectl.run("delete", FILTER, ENVOY_FILTER_NAME, "-n", NAMESPACE)
    yield 1, in_profile("KFX302", "EnvoyFilter", ENVOY_FILTER_NAME, NAMESPACE)


@breakage("KFX303")
def envoy_filter_left_in_token_mode(s: Setup) -> Iterator[Expected]:
    """The namespace moved to token mode (annotation and label), but no sync has removed its EnvoyFilter."""
    s.hooks.stop()
    with (
        namespace_marked(s, "annotate", MODE_ANNOTATION, "token"),
        namespace_marked(s, "label", MODE_LABEL, "token"),
    ):
        yield 2, in_profile("KFX303", "EnvoyFilter", ENVOY_FILTER_NAME, NAMESPACE)


@breakage("KFX304")
def annotation_the_label_does_not_follow(s: Setup) -> Iterator[Expected]:
    """With the hooks down, an annotation changes and the label the webhook routes by does not follow."""
    s.hooks.stop()
    with namespace_marked(s, "annotate", MODE_ANNOTATION, "token"):
        yield 1, in_profile("KFX304", "Namespace", NAMESPACE)


@breakage("KFX305")
def ambient_namespace_in_header_mode(s: Setup) -> Iterator[Expected]:
    with namespace_marked(s, "label", AMBIENT_LABEL, AMBIENT):
        yield 1, in_profile("KFX305", "Namespace", NAMESPACE)


@breakage("KFX306")
def default_editor_deleted(s: Setup) -> Iterator[Expected]:
    s.kubectl.run("delete", "serviceaccount", "default-editor", "-n", NAMESPACE)
    yield 1, in_profile("KFX306", "ServiceAccount", "default-editor", NAMESPACE)


@breakage("KFX307")
def katib_label_removed(s: Setup) -> Iterator[Expected]:
    s.kubectl.run("label", "namespace", NAMESPACE, f"{KATIB_LABEL}-")
    yield 2, in_profile("KFX307", "Namespace", NAMESPACE)


@breakage("KFX402")
def token_mode_on_kfp_1_5(s: Setup) -> Iterator[Expected]:
    peer_workloads.set_image(s.kubectl, peer_workloads.ML_PIPELINE, peer_workloads.KFP_WITHOUT_TOKENS)
    with namespace_marked(s, "annotate", MODE_ANNOTATION, "token"):
        yield 1, in_profile("KFX402", "Namespace", NAMESPACE)


@breakage("KFX403")
def default_overlay_on_istio_1_5(s: Setup) -> Iterator[Expected]:
    peer_workloads.set_image(s.kubectl, peer_workloads.ISTIOD, peer_workloads.ISTIO_WITHOUT_POLICIES)
    yield 1, in_profile("KFX403", "DecoratorController", CONTROLLER)


@breakage("KFX404")
def append_action_on_istio_1_14(s: Setup) -> Iterator[Expected]:
    peer_workloads.set_image(s.kubectl, peer_workloads.ISTIOD, peer_workloads.ISTIO_WITHOUT_APPEND_ACTION)
    yield 1, in_profile("KFX404", "DecoratorController", CONTROLLER)


@breakage("KFX405")
def native_sidecars_forced_with_a_kubelet_1_28(s: Setup) -> Iterator[Expected]:
    """istiod told to use native sidecars everywhere, and one node whose kubelet predates them."""
    node = "e2e-doctor-kubelet-1-28"
    try:
        peer_workloads.set_environment(s.kubectl, peer_workloads.ISTIOD, {"ENABLE_NATIVE_SIDECARS": "true"})
        peer_workloads.register_node(s.kubectl, node, "v1.28.15")
        yield 1, in_profile("KFX405", "Deployment", peer_workloads.ISTIOD, "istio-system")
    finally:
        s.kubectl.run("delete", "node", node, "--ignore-not-found")
        # The re-applied manifests do not own the env (a patch set it), so it goes here.
        peer_workloads.set_environment(s.kubectl, peer_workloads.ISTIOD, None)


@breakage("KFX406")
def katib_too_old(s: Setup) -> Iterator[Expected]:
    peer_workloads.set_image(s.kubectl, peer_workloads.KATIB_CONTROLLER, peer_workloads.OLD_KATIB)
    yield 2, in_profile("KFX406", "Deployment", peer_workloads.KATIB_CONTROLLER, "kubeflow")


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_a_setup_broken_one_way_reports_exactly_that(setup: Setup, name: str) -> None:
    settles_on(setup.kubeconfig, HEALTHY)
    try:
        with BREAKAGES[name](setup) as expected:
            settles_on(setup.kubeconfig, expected)
    finally:
        setup.restore()
    settles_on(setup.kubeconfig, HEALTHY)


def test_on_kubernetes_1_27_the_shipped_setup_reports_only_that_it_is_too_old(tmp_path: Path) -> None:
    """The oldest Kubernetes's own control plane (kube-apiserver and kube-controller-manager 1.27), with
    the same setup: the server stores the configuration without its matchConditions and says nothing, and
    doctor names that cause once (KFX401) rather than a drift of every entry (KFX104)."""
    with ControlPlane(versions=versions.oldest()) as oldest:
        served = json.loads(oldest.kubectl.run("get", "--raw", "/version").stdout)["gitVersion"]
        assert served == f"v{versions.oldest().kubernetes}"
        s = deploy(oldest, tmp_path)
        settles_on(s.kubeconfig, (1, {("KFX401", "Cluster", None, "kubernetes")}))
        stored = oldest.kubectl("get", "mutatingwebhookconfiguration", CONFIGURATION)["webhooks"]
        assert [entry.get("matchConditions") for entry in stored] == [None] * len(stored)


def test_a_user_without_the_role_is_told_what_it_could_not_read(
    setup: Setup, control_plane: ControlPlane, tmp_path: Path
) -> None:
    stranger = user_kubeconfig(control_plane, "e2e-doctor-stranger", tmp_path / "kubeconfig")
    status, found = doctor(stranger)
    assert status == 1
    assert {code for code, *_ in found} >= {"KFX001"}
