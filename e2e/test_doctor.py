"""``kubeflow-extension doctor`` on the real kube-apiserver, run as a user bound only to the shipped
read-only ClusterRole (doctor/rbac/): the shipped manifests with the local hooks and webhook report
nothing, and each setup broken in one way reports that code on that object.

The local control plane runs Metacontroller as a process, not in a Pod: a StatefulSet standing for it
(its upstream name, image and service account, its status set to ready) is what doctor finds, as it would
find the real one in a cluster. The DecoratorController selects only this module's namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, LocalService
from e2e.framework.doctor import run as run_doctor
from e2e.framework.objects import profile_objects
from e2e.framework.processes import eventually
from hooks.identity import MODE_ANNOTATION, MODE_LABEL
from hooks.istio import ENVOY_FILTER_NAME, authorization_name

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-doctor-alice"
SELECTED = "e2e.kubeflow-extension/doctor"
USER = "e2e-doctor"
CONTROLLER = "kubeflow-extension-profile-access"
CONFIGURATION = "kubeflow-extension"
POLICY = "authorizationpolicies.security.istio.io"
FILTER = "envoyfilters.networking.istio.io"


def metacontroller_stand_in() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "metacontroller"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metacontroller"}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "metacontroller", "namespace": "metacontroller"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "metacontroller", "namespace": "metacontroller"},
            "spec": {
                "replicas": 1,
                "serviceName": "",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "metacontroller",
                        "containers": [
                            {
                                "name": "metacontroller",
                                "image": "ghcr.io/metacontroller/metacontroller:v4.17.2",
                            }
                        ],
                    },
                },
            },
        },
    ]


@pytest.fixture(scope="module")
def setup(
    control_plane: ControlPlane, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, LocalService]]:
    """The shipped kustomizations (hooks and webhook local), one profile namespace, and a kubeconfig of a
    user bound to doctor's ClusterRole only."""
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}])
    kubectl.apply(metacontroller_stand_in())
    kubectl.run(
        "patch",
        "statefulset",
        "metacontroller",
        "-n",
        "metacontroller",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
    )
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
    kubectl.apply([*controllers, *webhooks, *kubectl.kustomize(REPO_ROOT / "doctor" / "rbac")])
    kubectl.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": USER},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "kubeflow-extension-doctor",
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
            }
        ]
    )
    profile, namespace, account = profile_objects(NAMESPACE, "alice@example.com")
    namespace["metadata"]["labels"][SELECTED] = "yes"
    kubectl.apply([profile, namespace, account])
    kubeconfig = tmp_path_factory.mktemp("doctor") / "kubeconfig"
    kubeconfig.write_text(control_plane.client_kubeconfig(USER))
    yield kubeconfig, hooks
    kubectl.run("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    kubectl.run("delete", "profile", NAMESPACE, "--ignore-not-found")
    kubectl.run("delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found")
    kubectl.run("delete", "decoratorcontroller", CONTROLLER, "--ignore-not-found")
    kubectl.run("delete", "clusterrolebinding", USER, "--ignore-not-found")
    kubectl.run("delete", "namespace", "metacontroller", "--ignore-not-found", "--wait=false")


def doctor(kubeconfig: Path) -> tuple[int, set[tuple[str, str, str | None, str]]]:
    """Exit status and (code, kind, namespace, name) of each finding, for this module's namespace."""
    status, findings = run_doctor(kubeconfig, "-n", NAMESPACE)
    assert status in (0, 1, 2), status
    found = {
        (f["code"], f["object"]["kind"], f["object"]["namespace"], f["object"]["name"]) for f in findings
    }
    return status, found


def healthy(kubeconfig: Path) -> None:
    eventually(lambda: doctor(kubeconfig) == (0, set()), timeout=90, what="doctor reporting nothing")


def test_the_shipped_setup_reports_nothing(setup: tuple[Path, LocalService], kubectl: Kubectl) -> None:
    kubeconfig, _ = setup
    healthy(kubeconfig)
    # What doctor passed is really there: the children and the label, read with its own account.
    assert kubectl.get(POLICY, authorization_name(NAMESPACE), "kubeflow") is not None
    assert kubectl.get(FILTER, ENVOY_FILTER_NAME, NAMESPACE) is not None
    assert kubectl("get", "namespace", NAMESPACE)["metadata"]["labels"][MODE_LABEL] == "header"


def test_a_webhook_configuration_without_ca_bundle(
    setup: tuple[Path, LocalService], kubectl: Kubectl
) -> None:
    kubeconfig, _ = setup
    healthy(kubeconfig)
    configuration = kubectl("get", "mutatingwebhookconfiguration", CONFIGURATION)
    bundles = [w["clientConfig"]["caBundle"] for w in configuration["webhooks"]]
    remove = [{"op": "remove", "path": f"/webhooks/{i}/clientConfig/caBundle"} for i in range(len(bundles))]
    kubectl.run(
        "patch", "mutatingwebhookconfiguration", CONFIGURATION, "--type=json", "-p", json.dumps(remove)
    )
    try:
        assert doctor(kubeconfig) == (1, {("KFX105", "MutatingWebhookConfiguration", None, CONFIGURATION)})
    finally:
        add = [
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": b}
            for i, b in enumerate(bundles)
        ]
        kubectl.run(
            "patch", "mutatingwebhookconfiguration", CONFIGURATION, "--type=json", "-p", json.dumps(add)
        )
    healthy(kubeconfig)


def sync_hook(kubectl: Kubectl, webhook: dict[str, Any]) -> None:
    patch = [{"op": "replace", "path": "/spec/hooks/sync/webhook", "value": webhook}]
    kubectl.run("patch", "decoratorcontroller", CONTROLLER, "--type=json", "-p", json.dumps(patch))


def test_hooks_behind_a_service_without_endpoints(setup: tuple[Path, LocalService], kubectl: Kubectl) -> None:
    kubeconfig, _ = setup
    healthy(kubeconfig)
    kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kubeflow-extension-hooks", "namespace": "kubeflow-extension"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }
        ]
    )
    original = kubectl("get", "decoratorcontroller", CONTROLLER)["spec"]["hooks"]["sync"]["webhook"]
    service = {
        "service": {"name": "kubeflow-extension-hooks", "namespace": "kubeflow-extension", "port": 80},
        "path": "/sync",
        "timeout": "10s",
    }
    sync_hook(kubectl, service)
    try:
        assert doctor(kubeconfig) == (1, {("KFX203", "DecoratorController", None, CONTROLLER)})
    finally:
        sync_hook(kubectl, original)
        kubectl.run("delete", "service", "kubeflow-extension-hooks", "-n", "kubeflow-extension")
    healthy(kubeconfig)


def test_a_mode_label_that_disagrees_with_the_annotation(
    setup: tuple[Path, LocalService], kubectl: Kubectl
) -> None:
    """With the hooks down, an annotation changes and the label the webhook routes by does not follow."""
    kubeconfig, hooks = setup
    healthy(kubeconfig)
    hooks.stop()
    try:
        kubectl.run("annotate", "namespace", NAMESPACE, f"{MODE_ANNOTATION}=token")
        assert doctor(kubeconfig) == (1, {("KFX304", "Namespace", None, NAMESPACE)})
    finally:
        kubectl.run("annotate", "namespace", NAMESPACE, f"{MODE_ANNOTATION}-")
        hooks.start()
    healthy(kubeconfig)


def test_a_user_without_the_role_is_told_what_it_could_not_read(
    setup: tuple[Path, LocalService], control_plane: ControlPlane, tmp_path: Path
) -> None:
    stranger = tmp_path / "kubeconfig"
    stranger.write_text(control_plane.client_kubeconfig("e2e-doctor-stranger"))
    status, found = doctor(stranger)
    assert status == 1
    assert {code for code, *_ in found} >= {"KFX001"}
