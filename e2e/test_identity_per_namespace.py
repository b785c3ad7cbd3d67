"""One identity decision per namespace, seen by the hooks and the webhook alike, on the real kube-apiserver
and Metacontroller: the hooks label each profile namespace with the mode in effect, and the shipped
MutatingWebhookConfiguration routes by that label, so a namespace annotated ``token`` under a global
``header`` gets the projected token in its Pods exactly when its AuthorizationPolicy admits only tokens.

Two DecoratorControllers (the shipped one, renamed) call hooks configured ``header`` and ``token``; each
selects its own namespaces. The webhook's configuration is the shipped one, renamed, with its profile
selector narrowed to this module's namespaces and its identity routing left as shipped.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl
from e2e.framework.objects import profile_objects
from e2e.framework.processes import eventually
from hooks.identity import MODE_ANNOTATION, MODE_LABEL
from hooks.istio import ENVOY_FILTER_NAME, authorization_name
from tests.webhook import katib_objects

pytestmark = pytest.mark.e2e

SELECTED = "e2e.kubeflow-extension/global-mode"
"""This module's namespaces carry it (valued by the global mode of the hooks that serve them) instead of
the profile label, so no other test's webhook or controller reaches them."""
PROFILE_LABEL = "app.kubernetes.io/part-of"
NAME = "kubeflow-extension-identity-e2e"
POLICY = "authorizationpolicies.security.istio.io"
FILTER = "envoyfilters.networking.istio.io"
TOKEN_VOLUME = "volume-kf-pipeline-token"
SYNCED_WITHIN = 90.0
HOLD = 2.0
"""How long the migration stays at each step, sampled all along."""


@pytest.fixture(scope="module")
def routed(control_plane: ControlPlane, kubectl: Kubectl) -> Iterator[None]:
    """Hooks in header and in token mode behind one DecoratorController each; the webhook behind the shipped
    configuration."""
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}])
    controllers = []
    for mode in ("header", "token"):
        hooks = control_plane.start_service(
            f"hooks-{mode}", "hooks.app:app", env={"KFEXT_IDENTITY_MODE": mode}
        )
        documents = control_plane.localized_manifests(REPO_ROOT / "metacontroller", hooks=hooks)
        (controller,) = [d for d in documents if d["kind"] == "DecoratorController"]
        controller["metadata"]["name"] = f"{NAME}-{mode}"
        (resource,) = controller["spec"]["resources"]
        resource["labelSelector"] = {"matchLabels": {SELECTED: mode}}
        controllers.append(controller)
    webhook = control_plane.start_service("webhook-identity", "webhook.app:app", tls=True)
    documents = control_plane.localized_manifests(REPO_ROOT / "webhook" / "manifests", webhook=webhook)
    (configuration,) = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    configuration["metadata"]["name"] = NAME
    for entry in configuration["webhooks"]:
        for expression in entry["namespaceSelector"]["matchExpressions"]:
            if expression["key"] == PROFILE_LABEL:
                expression.update(key=SELECTED, operator="Exists", values=[])
    kubectl.apply([configuration, *controllers])
    yield
    kubectl.run("delete", "mutatingwebhookconfiguration", NAME, "--ignore-not-found")
    for controller in controllers:
        kubectl.run("delete", "decoratorcontroller", controller["metadata"]["name"], "--ignore-not-found")


def profile_namespace(
    kubectl: Kubectl,
    name: str,
    global_mode: str,
    *,
    namespace_mode: str | None = None,
    profile_mode: str | None = None,
) -> None:
    profile, namespace, account = profile_objects(name, f"{name}@example.com")
    namespace["metadata"]["labels"] = {SELECTED: global_mode, "istio-injection": "enabled"}
    if namespace_mode:
        namespace["metadata"]["annotations"][MODE_ANNOTATION] = namespace_mode
    if profile_mode:
        profile["metadata"]["annotations"] = {MODE_ANNOTATION: profile_mode}
    kubectl.apply([profile, namespace, account])


def label(kubectl: Kubectl, name: str) -> str | None:
    namespace = kubectl.get("namespace", name) or {}
    value: str | None = namespace.get("metadata", {}).get("labels", {}).get(MODE_LABEL)
    return value


def labelled(kubectl: Kubectl, name: str, mode: str) -> None:
    eventually(lambda: label(kubectl, name) == mode, timeout=SYNCED_WITHIN, what=f"{name} labelled {mode}")


def admitted(kubectl: Kubectl, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` as kube-apiserver would store it in ``namespace``, after every webhook (a server-side dry run:
    nothing is created, so no Pod runs and no Job controller acts)."""
    sent = copy.deepcopy(obj)
    sent["metadata"]["namespace"] = namespace
    stored: dict[str, Any] = kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(sent))
    return stored


def workloads() -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    """A notebook Pod, a trial Job and a trial Pod, and where each keeps its Pod spec."""
    trial_pod = katib_objects.trial_pod(kale="0.7")
    trial_pod["metadata"].pop("ownerReferences", None)
    return {
        "notebook": (katib_objects.notebook_pod(), ("spec",)),
        "trial-job": (katib_objects.trial_job(), ("spec", "template", "spec")),
        "trial-pod": (trial_pod, ("spec",)),
    }


def has_token(stored: dict[str, Any], spec_path: tuple[str, ...]) -> bool:
    spec: Any = stored
    for key in spec_path:
        spec = spec[key]
    return any(v.get("name") == TOKEN_VOLUME for v in spec.get("volumes", []))


def token_in(kubectl: Kubectl, namespace: str) -> dict[str, bool]:
    return {
        kind: has_token(admitted(kubectl, obj, namespace), path) for kind, (obj, path) in workloads().items()
    }


def rule_keys(kubectl: Kubectl, namespace: str) -> list[list[str]]:
    """The header keys each rule of the namespace's AuthorizationPolicy checks."""
    policy = kubectl.get(POLICY, authorization_name(namespace), "kubeflow") or {"spec": {"rules": []}}
    return [sorted(c["key"] for c in rule.get("when", [])) for rule in policy["spec"]["rules"]]


HEADER_RULE = ["request.headers[kubeflow-userid]"]
TOKEN_RULE = ["request.headers[authorization]", "request.headers[kubeflow-userid]"]


def envoy_filter(kubectl: Kubectl, namespace: str) -> Any:
    return kubectl.get(FILTER, ENVOY_FILTER_NAME, namespace)


def assert_token_mode(kubectl: Kubectl, namespace: str) -> None:
    eventually(
        lambda: rule_keys(kubectl, namespace) == [TOKEN_RULE], timeout=SYNCED_WITHIN, what="token rule"
    )
    eventually(lambda: envoy_filter(kubectl, namespace) is None, timeout=SYNCED_WITHIN, what="no EnvoyFilter")
    assert token_in(kubectl, namespace) == {"notebook": True, "trial-job": True, "trial-pod": True}


def assert_header_mode(kubectl: Kubectl, namespace: str) -> None:
    eventually(
        lambda: rule_keys(kubectl, namespace) == [HEADER_RULE], timeout=SYNCED_WITHIN, what="header rule"
    )
    eventually(lambda: envoy_filter(kubectl, namespace), timeout=SYNCED_WITHIN, what="the EnvoyFilter")
    assert token_in(kubectl, namespace) == {"notebook": False, "trial-job": False, "trial-pod": False}


MODE_CHECKS = {"token": assert_token_mode, "header": assert_header_mode}


@pytest.mark.parametrize(
    ("global_mode", "annotated", "plain"),
    [("header", "e2e-mode-erin", "e2e-mode-frank"), ("token", "e2e-mode-hank", "e2e-mode-iris")],
)
@pytest.mark.usefixtures("routed")
def test_a_namespace_annotated_with_the_other_mode_gets_it_and_its_neighbour_keeps_the_global_one(
    kubectl: Kubectl, global_mode: str, annotated: str, plain: str
) -> None:
    other = "token" if global_mode == "header" else "header"
    profile_namespace(kubectl, annotated, global_mode, namespace_mode=other)
    profile_namespace(kubectl, plain, global_mode)
    for name, mode in ((annotated, other), (plain, global_mode)):
        labelled(kubectl, name, mode)
        MODE_CHECKS[mode](kubectl, name)
    # Header mode is what it was: the notebook labelled for the EnvoyFilter, and no token anywhere in it.
    in_header_mode = plain if global_mode == "header" else annotated
    notebook = admitted(kubectl, katib_objects.notebook_pod(), in_header_mode)
    assert notebook["metadata"]["labels"]["kubeflow-extension"] == "true"
    assert "KF_PIPELINES_SA_TOKEN_PATH" not in json.dumps(notebook) and not has_token(notebook, ("spec",))


@pytest.mark.usefixtures("routed")
def test_a_profile_annotation_switches_the_namespace_and_removing_it_switches_back(kubectl: Kubectl) -> None:
    name = "e2e-mode-gina"
    profile_namespace(kubectl, name, "header", profile_mode="token")
    labelled(kubectl, name, "token")
    assert_token_mode(kubectl, name)
    kubectl.run("annotate", "profile", name, f"{MODE_ANNOTATION}-")
    labelled(kubectl, name, "header")
    assert_header_mode(kubectl, name)


@pytest.mark.usefixtures("routed")
def test_a_bad_value_is_a_sync_error_and_changes_nothing(kubectl: Kubectl) -> None:
    name = "e2e-mode-jack"
    profile_namespace(kubectl, name, "header", namespace_mode="token")
    labelled(kubectl, name, "token")
    assert_token_mode(kubectl, name)
    kubectl.run("annotate", "namespace", name, f"{MODE_ANNOTATION}=sidecar", "--overwrite")

    def sync_errors() -> list[Any]:
        events: list[Any] = kubectl(
            "get", "events", "-A", "--field-selector", f"reason=SyncError,involvedObject.name={name}"
        )["items"]
        return [e for e in events if MODE_ANNOTATION in e.get("message", "")]

    (event, *_) = eventually(sync_errors, timeout=SYNCED_WITHIN, what="a SyncError Event on the Namespace")
    assert "sidecar" in event["message"]
    assert label(kubectl, name) == "token"
    assert_token_mode(kubectl, name)


@pytest.mark.usefixtures("routed")
def test_migrating_one_namespace_never_leaves_a_new_notebook_without_header_or_token(
    kubectl: Kubectl,
) -> None:
    """README's path, one namespace at a time: header, then both (restart the notebooks), then token. A
    notebook Pod created at any moment gets the projected token or has the EnvoyFilter's header."""
    name = "e2e-mode-kate"
    profile_namespace(kubectl, name, "header")
    labelled(kubectl, name, "header")
    assert_header_mode(kubectl, name)
    unprotected: list[str] = []
    samples: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        notebook = katib_objects.notebook_pod()
        while not stop.is_set():
            token = has_token(admitted(kubectl, notebook, name), ("spec",))
            header = envoy_filter(kubectl, name) is not None
            samples.append(f"{label(kubectl, name)}:{'token' if token else ''}{'+header' if header else ''}")
            if not (token or header):
                unprotected.append(samples[-1])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        time.sleep(HOLD)
        kubectl.run("annotate", "namespace", name, f"{MODE_ANNOTATION}=both", "--overwrite")
        labelled(kubectl, name, "both")
        eventually(
            lambda: rule_keys(kubectl, name) == [HEADER_RULE, TOKEN_RULE],
            timeout=SYNCED_WITHIN,
            what="both rules",
        )
        assert envoy_filter(kubectl, name) is not None
        time.sleep(HOLD)  # the notebooks are restarted: each gets a token
        kubectl.run("annotate", "namespace", name, f"{MODE_ANNOTATION}=token", "--overwrite")
        labelled(kubectl, name, "token")
        assert_token_mode(kubectl, name)
        time.sleep(HOLD)
    finally:
        stop.set()
        sampler.join(30)
    assert unprotected == [], unprotected
    assert {s.split(":")[0] for s in samples} >= {"header", "both", "token"}, samples
