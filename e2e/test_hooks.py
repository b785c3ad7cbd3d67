"""The hooks through real Metacontroller: the project's own DecoratorController, localized to the
hooks process, reconciling real Namespaces and Profiles on a real kube-apiserver."""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, LocalService
from e2e.framework.objects import profile_objects
from e2e.framework.processes import eventually
from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, desired
from hooks.istio import ENVOY_FILTER_NAME, authorization_name
from service.config import Config

pytestmark = pytest.mark.e2e

CONFIG = Config()
POLICY = "authorizationpolicies.security.istio.io"
BINDING = "servicerolebindings.rbac.istio.io"
FILTER = "envoyfilters.networking.istio.io"


@pytest.fixture(scope="module")
def profile_access(control_plane: ControlPlane, kubectl: Kubectl, hooks_server: LocalService) -> None:
    """The shipped DecoratorController (metacontroller/), pointed at the local hooks."""
    kubectl.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONFIG.kubeflow_namespace}}]
    )
    control_plane.apply_project_manifests(REPO_ROOT / "metacontroller", hooks=hooks_server)


def create_profile(kubectl: Kubectl, name: str, owner: str) -> None:
    kubectl.apply(profile_objects(name, owner))


def children(kubectl: Kubectl, namespace: str, authorization: str = POLICY) -> tuple[Any, Any]:
    return (
        kubectl.get(authorization, authorization_name(namespace), CONFIG.kubeflow_namespace),
        kubectl.get(FILTER, ENVOY_FILTER_NAME, namespace),
    )


def both_children(kubectl: Kubectl, namespace: str, authorization: str = POLICY) -> tuple[Any, Any] | None:
    found = children(kubectl, namespace, authorization)
    return found if all(found) else None


def header_value(envoy_filter: dict[str, Any]) -> str:
    patch = envoy_filter["spec"]["configPatches"][0]["patch"]["value"]
    value: str = patch["request_headers_to_add"][0]["header"]["value"]
    return value


def expected(namespace: str, owner: str, types: Any = CURRENT_ISTIO) -> dict[str, dict[str, Any]]:
    profile = {"metadata": {"name": namespace}, "spec": {"owner": {"name": owner}}}
    return {obj["kind"]: obj for obj in desired(namespace, profile, types, CONFIG)}


@pytest.mark.usefixtures("profile_access")
def test_profile_namespace_gets_its_children_owned_by_the_namespace(kubectl: Kubectl) -> None:
    create_profile(kubectl, "e2e-alice", "alice@example.com")
    policy, envoy_filter = eventually(
        lambda: both_children(kubectl, "e2e-alice"), what="both children", timeout=90
    )
    namespace = kubectl.get("namespace", "e2e-alice")
    assert namespace is not None
    want = expected("e2e-alice", "alice@example.com")
    for stored, kind in ((policy, "AuthorizationPolicy"), (envoy_filter, "EnvoyFilter")):
        assert stored["spec"] == want[kind]["spec"]
        assert want[kind]["metadata"]["labels"].items() <= stored["metadata"]["labels"].items()
        (owner,) = stored["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Namespace",
            "e2e-alice",
            namespace["metadata"]["uid"],
        )
        assert owner["controller"] is True


@pytest.mark.usefixtures("profile_access")
def test_owner_change_updates_children(kubectl: Kubectl) -> None:
    create_profile(kubectl, "e2e-owner", "first@example.com")
    eventually(lambda: both_children(kubectl, "e2e-owner"), what="both children", timeout=90)
    kubectl.run(
        "patch",
        "profile",
        "e2e-owner",
        "--type=merge",
        "-p",
        '{"spec":{"owner":{"name":"second@example.com"}}}',
    )

    def updated() -> bool:
        policy, envoy_filter = children(kubectl, "e2e-owner")
        return bool(
            policy
            and envoy_filter
            and policy["spec"]["rules"][0]["when"][0]["values"] == ["second@example.com"]
            and header_value(envoy_filter) == "second@example.com"
        )

    eventually(updated, what="children to carry the new owner", timeout=90)


@pytest.mark.usefixtures("profile_access")
def test_deleted_or_edited_children_are_restored(kubectl: Kubectl) -> None:
    create_profile(kubectl, "e2e-repair", "repair@example.com")
    policy, _ = eventually(lambda: both_children(kubectl, "e2e-repair"), what="both children", timeout=90)
    kubectl.run("delete", POLICY, authorization_name("e2e-repair"), "-n", CONFIG.kubeflow_namespace)
    restored = eventually(
        lambda: children(kubectl, "e2e-repair")[0], what="the policy to come back", timeout=90
    )
    assert restored["metadata"]["uid"] != policy["metadata"]["uid"]
    assert restored["spec"] == policy["spec"]

    kubectl.run(
        "patch",
        FILTER,
        ENVOY_FILTER_NAME,
        "-n",
        "e2e-repair",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/configPatches/0/patch/value/request_headers_to_add/0/header/value",'
        '"value":"mallory@example.com"}]',
    )
    eventually(
        lambda: header_value(children(kubectl, "e2e-repair")[1]) == "repair@example.com",
        what="the edited filter to be set back",
        timeout=90,
    )


@pytest.mark.usefixtures("profile_access")
def test_profile_deleted_removes_children_and_namespace_deleted_collects_the_policy(kubectl: Kubectl) -> None:
    create_profile(kubectl, "e2e-gone", "gone@example.com")
    eventually(lambda: both_children(kubectl, "e2e-gone"), what="both children", timeout=90)
    kubectl.run("delete", "profile", "e2e-gone")
    eventually(
        lambda: children(kubectl, "e2e-gone") == (None, None), what="children to be removed", timeout=90
    )

    create_profile(kubectl, "e2e-nsdel", "nsdel@example.com")
    eventually(lambda: both_children(kubectl, "e2e-nsdel"), what="both children", timeout=90)
    kubectl.run("delete", "namespace", "e2e-nsdel", "--wait=false")
    # The garbage collector removes the kubeflow-side policy once its owner, the Namespace, is gone.
    eventually(
        lambda: children(kubectl, "e2e-nsdel")[0] is None,
        what="the garbage collector to delete the policy in kubeflow",
        timeout=180,
    )


@pytest.mark.usefixtures("profile_access")
def test_hooks_down_deletes_nothing_and_reconciles_when_back(
    kubectl: Kubectl, hooks_server: LocalService
) -> None:
    create_profile(kubectl, "e2e-down", "down@example.com")
    before = eventually(lambda: both_children(kubectl, "e2e-down"), what="both children", timeout=90)
    hooks_server.stop()
    try:
        # Every change below triggers a sync that fails: nothing may be deleted meanwhile.
        kubectl.run(
            "patch",
            "profile",
            "e2e-down",
            "--type=merge",
            "-p",
            '{"spec":{"owner":{"name":"later@example.com"}}}',
        )
        kubectl.run("label", "namespace", "e2e-down", "touched=yes")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = children(kubectl, "e2e-down")
            assert [c["metadata"]["uid"] for c in now if c] == [c["metadata"]["uid"] for c in before]
            time.sleep(1)
    finally:
        hooks_server.start()
    eventually(
        lambda: header_value(children(kubectl, "e2e-down")[1]) == "later@example.com",
        what="the change made while the hooks were down to be reconciled",
        timeout=120,
    )


@pytest.mark.usefixtures("profile_access")
def test_legacy_istio_overlay_yields_service_role_bindings(
    control_plane: ControlPlane, kubectl: Kubectl, hooks_server: LocalService
) -> None:
    """Last in this module: it swaps the DecoratorController for the legacy overlay's, then back."""
    control_plane.apply_project_manifests(REPO_ROOT / "metacontroller" / "legacy-istio", hooks=hooks_server)
    try:
        create_profile(kubectl, "e2e-legacy", "legacy@example.com")
        binding, envoy_filter = eventually(
            lambda: both_children(kubectl, "e2e-legacy", BINDING), what="legacy children", timeout=120
        )
        want = expected("e2e-legacy", "legacy@example.com", LEGACY_ISTIO)
        assert binding["spec"] == want["ServiceRoleBinding"]["spec"]
        assert envoy_filter["spec"] == want["EnvoyFilter"]["spec"]
    finally:
        control_plane.apply_project_manifests(REPO_ROOT / "metacontroller", hooks=hooks_server)
