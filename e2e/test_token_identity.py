"""Token identity on the real kube-apiserver: the webhook's projected token volume as stored, the token the
API server issues for it, KFP's TokenReview and SubjectAccessReview against Kubeflow's RBAC, and the hooks
in token, both and header-on-ambient modes through real Metacontroller."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, LocalService
from e2e.framework import objects
from e2e.framework.objects import profile_objects
from e2e.framework.processes import eventually
from e2e.peers import kubeflow_rbac
from hooks.identity import AMBIENT_HEADER_NOTICE, MODE_ANNOTATION, NOTICE_ANNOTATION
from hooks.istio import ENVOY_FILTER_NAME, authorization_name
from tests.webhook import katib_objects

pytestmark = pytest.mark.e2e

SELECTED = "e2e.kubeflow-extension/identity"
"""The only label of this module's namespaces, and what its webhook configuration and DecoratorController
select: no other test's configuration reaches them, and this module's reach no other namespace."""
ALICE, BOB = "e2e-token-alice", "e2e-token-bob"
AUDIENCE = "pipelines.kubeflow.org"
TOKEN_DIRECTORY = "/var/run/secrets/kubeflow/pipelines"
POLICY = "authorizationpolicies.security.istio.io"
FILTER = "envoyfilters.networking.istio.io"


@pytest.fixture(scope="module")
def token_admission(control_plane: ControlPlane, kubectl: Kubectl) -> Iterator[LocalService]:
    """The webhook behind the shipped configuration's token-mode entries, renamed and limited to this
    module's namespaces; Kubeflow's RBAC; two profile namespaces with default-editor bound as Kubeflow
    binds it."""
    webhook = control_plane.start_service("webhook-token", "webhook.app:app", tls=True)
    documents = control_plane.localized_manifests(REPO_ROOT / "webhook" / "manifests", webhook=webhook)
    (configuration,) = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    configuration["metadata"]["name"] = "kubeflow-extension-token-e2e"
    configuration["webhooks"] = [
        e for e in configuration["webhooks"] if e["clientConfig"]["url"].endswith("/token")
    ]
    for entry in configuration["webhooks"]:
        entry["namespaceSelector"] = {"matchLabels": {SELECTED: "token"}}
    kubectl.apply([configuration, *kubeflow_rbac.cluster_roles()])
    for name in (ALICE, BOB):
        namespace, *rest = profile_objects(name, f"{name}@example.com")[1:]
        namespace["metadata"]["labels"] = {SELECTED: "token"}
        kubectl.apply([namespace, *rest, kubeflow_rbac.default_editor_binding(name)])
    yield webhook
    kubectl.run(
        "delete", "mutatingwebhookconfiguration", "kubeflow-extension-token-e2e", "--ignore-not-found"
    )


def create(kubectl: Kubectl, obj: dict[str, Any], namespace: str = ALICE) -> dict[str, Any]:
    return objects.create(kubectl, obj, namespace)


def token_source(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == "volume-kf-pipeline-token"]
    (source,) = volume["projected"]["sources"]
    token: dict[str, Any] = source["serviceAccountToken"]
    return token


def assert_mounted(pod_spec: dict[str, Any], containers: set[str]) -> None:
    # The values Kubeflow documents for its access-ml-pipeline PodDefault.
    (kubeflow_source,) = katib_objects.KUBEFLOW_VOLUME["projected"]["sources"]
    assert token_source(pod_spec) == kubeflow_source["serviceAccountToken"]
    for container in pod_spec["containers"]:
        if container["name"] not in containers:
            continue
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] == TOKEN_DIRECTORY]
        assert mounts == [katib_objects.KUBEFLOW_MOUNT]
        assert katib_objects.KUBEFLOW_ENV in container["env"]


@pytest.mark.usefixtures("token_admission")
def test_notebook_and_trial_pods_are_stored_with_the_projected_token(kubectl: Kubectl) -> None:
    notebook = create(kubectl, katib_objects.notebook_pod())
    assert_mounted(notebook["spec"], {"my-notebook"})
    trial = create(kubectl, katib_objects.trial_pod(kale="0.7"))
    assert_mounted(trial["spec"], {"main", "metrics-logger-and-collector"})
    proxy = next(c for c in trial["spec"]["containers"] if c["name"] == "istio-proxy")
    assert all(m["mountPath"] != TOKEN_DIRECTORY for m in proxy.get("volumeMounts", []))


@pytest.mark.usefixtures("token_admission")
def test_a_pod_default_mount_is_stored_once(kubectl: Kubectl) -> None:
    pod = katib_objects.notebook_pod()
    pod["metadata"]["name"] = "pod-default-notebook-0"
    pod["spec"]["volumes"] = [copy.deepcopy(katib_objects.KUBEFLOW_VOLUME)]
    pod["spec"]["containers"][0]["volumeMounts"] = [dict(katib_objects.KUBEFLOW_MOUNT)]
    pod["spec"]["containers"][0]["env"] = [dict(katib_objects.KUBEFLOW_ENV)]
    stored = create(kubectl, pod)
    assert [v["name"] for v in stored["spec"]["volumes"]].count("volume-kf-pipeline-token") == 1
    assert_mounted(stored["spec"], {"my-notebook"})
    assert len(stored["spec"]["containers"][0]["env"]) == 1


@pytest.mark.usefixtures("token_admission")
def test_the_trial_jobs_pod_runs_as_default_editor_with_the_token(kubectl: Kubectl) -> None:
    stored = objects.create_kale_trial_job(kubectl, "token-exp-x7k2p", ALICE)
    assert stored["spec"]["template"]["spec"]["serviceAccountName"] == "default-editor"
    assert_mounted(stored["spec"]["template"]["spec"], {"main"})
    pod = eventually(
        lambda: kubectl("get", "pods", "-n", ALICE, "-l", "batch.kubernetes.io/job-name=token-exp-x7k2p")[
            "items"
        ],
        what="the Job controller's Pod",
    )[0]
    assert pod["spec"]["serviceAccountName"] == "default-editor"
    assert_mounted(pod["spec"], {"main"})
    assert [v["name"] for v in pod["spec"]["volumes"]].count("volume-kf-pipeline-token") == 1


def issue_token(kubectl: Kubectl, pod: dict[str, Any]) -> str:
    """What the kubelet does for the Pod's projected volume: a TokenRequest for the Pod's service account
    with the volume's audience and lifetime, bound to the Pod."""
    source = token_source(pod["spec"])
    return str(
        kubectl.run(
            "create",
            "token",
            pod["spec"]["serviceAccountName"],
            "-n",
            pod["metadata"]["namespace"],
            f"--audience={source['audience']}",
            f"--duration={source['expirationSeconds']}s",
            "--bound-object-kind=Pod",
            f"--bound-object-name={pod['metadata']['name']}",
            f"--bound-object-uid={pod['metadata']['uid']}",
        ).stdout.strip()
    )


def token_review(kubectl: Kubectl, token: str, audience: str) -> dict[str, Any]:
    """The TokenReview KFP's TokenReviewAuthenticator sends: the token and its one configured audience."""
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [audience]},
    }
    status: dict[str, Any] = kubectl("create", "-f", "-", stdin=json.dumps(review))["status"]
    return status


def can_create_runs(kubectl: Kubectl, user: str, namespace: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": kubeflow_rbac.PIPELINES_GROUP,
                "version": "v1beta1",
                "resource": "runs",
            },
        },
    }
    return bool(kubectl("create", "-f", "-", stdin=json.dumps(review))["status"].get("allowed"))


@pytest.mark.usefixtures("token_admission")
def test_the_issued_token_is_what_kfp_authenticates_and_authorizes(kubectl: Kubectl) -> None:
    """Exactly the check Kubeflow Pipelines' API server makes (read from KFP 2.4.1 and 2.5.0,
    backend/src/apiserver/auth/authenticator_token_review.go and resource/resource_manager.go IsAuthorized):
    a TokenReview of the bearer token with audiences [TOKEN_REVIEW_AUDIENCE], which must be authenticated
    and carry that audience; then a SubjectAccessReview with only `user` set to the reviewed user name
    (no groups) and resourceAttributes {namespace, verb, group pipelines.kubeflow.org, version v1beta1,
    resource runs} (run_server.go canAccessRun)."""
    notebook = katib_objects.notebook_pod()
    notebook["metadata"]["name"] = "review-notebook-0"
    notebook["spec"]["serviceAccountName"] = "default-editor"  # as Kubeflow's notebook web app sets it
    token = issue_token(kubectl, create(kubectl, notebook))
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == [AUDIENCE] and claims["exp"] - claims["iat"] == 7200

    reviewed = token_review(kubectl, token, AUDIENCE)
    assert reviewed["authenticated"] is True
    assert AUDIENCE in reviewed["audiences"]
    user = reviewed["user"]["username"]
    assert user == f"system:serviceaccount:{ALICE}:default-editor"
    assert token_review(kubectl, token, "vault").get("authenticated") is not True

    eventually(
        lambda: can_create_runs(kubectl, user, ALICE),
        what="aggregated kubeflow-edit lets default-editor create runs",
    )
    assert can_create_runs(kubectl, user, ALICE)
    assert not can_create_runs(kubectl, user, BOB)
    bob = f"system:serviceaccount:{BOB}:default-editor"
    assert can_create_runs(kubectl, bob, BOB) and not can_create_runs(kubectl, bob, ALICE)


# -- the hooks in token mode through real Metacontroller ---------------------------------------------------


@pytest.fixture(scope="module")
def token_hooks(control_plane: ControlPlane, kubectl: Kubectl) -> Iterator[None]:
    """The shipped DecoratorController, renamed, limited to this module's namespaces, calling hooks that run
    with identity_mode: token."""
    hooks = control_plane.start_service("hooks-token", "hooks.app:app", env={"KFEXT_IDENTITY_MODE": "token"})
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}])
    documents = control_plane.localized_manifests(REPO_ROOT / "metacontroller", hooks=hooks)
    (controller,) = [d for d in documents if d["kind"] == "DecoratorController"]
    controller["metadata"]["name"] = "kubeflow-extension-token-e2e"
    (resource,) = controller["spec"]["resources"]
    resource["labelSelector"] = {"matchLabels": {SELECTED: "hooks"}}
    kubectl.apply([controller])
    yield
    kubectl.run("delete", "decoratorcontroller", "kubeflow-extension-token-e2e", "--ignore-not-found")


def hooks_namespace(kubectl: Kubectl, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
    profile, namespace, account = profile_objects(name, f"{name}@example.com")
    namespace["metadata"]["labels"] = {SELECTED: "hooks", **labels}
    namespace["metadata"]["annotations"].update(annotations)
    kubectl.apply([profile, namespace, account])


def rules(kubectl: Kubectl, namespace: str) -> list[Any] | None:
    policy = kubectl.get(POLICY, authorization_name(namespace), "kubeflow")
    return None if policy is None else list(policy["spec"]["rules"])


def header_keys(rule_list: list[Any]) -> list[list[tuple[str, str]]]:
    return [
        [(c["key"], "values" if "values" in c else "notValues") for c in rule["when"]] for rule in rule_list
    ]


TOKEN_KEYS = [("request.headers[authorization]", "values"), ("request.headers[kubeflow-userid]", "notValues")]
HEADER_KEYS = [("request.headers[kubeflow-userid]", "values")]


@pytest.mark.usefixtures("token_hooks")
def test_migration_from_both_to_token_drops_the_envoy_filter(kubectl: Kubectl) -> None:
    name = "e2e-token-carol"
    hooks_namespace(kubectl, name, {"istio-injection": "enabled"}, {MODE_ANNOTATION: "both"})
    eventually(
        lambda: rules(kubectl, name) and header_keys(rules(kubectl, name) or []) == [HEADER_KEYS, TOKEN_KEYS],
        what="both rules",
        timeout=90,
    )
    eventually(
        lambda: kubectl.get(FILTER, ENVOY_FILTER_NAME, name), what="the EnvoyFilter in both mode", timeout=90
    )
    kubectl.run("annotate", "namespace", name, f"{MODE_ANNOTATION}=token", "--overwrite")
    eventually(
        lambda: header_keys(rules(kubectl, name) or []) == [TOKEN_KEYS],
        what="only the token rule",
        timeout=90,
    )
    eventually(
        lambda: kubectl.get(FILTER, ENVOY_FILTER_NAME, name) is None, what="no EnvoyFilter", timeout=90
    )


@pytest.mark.usefixtures("token_hooks")
def test_an_ambient_namespace_in_header_mode_says_why_and_the_notice_goes_with_token_mode(
    kubectl: Kubectl,
) -> None:
    name = "e2e-token-dave"
    hooks_namespace(kubectl, name, {"istio.io/dataplane-mode": "ambient"}, {MODE_ANNOTATION: "header"})

    def notice() -> Any:
        namespace = kubectl.get("namespace", name)
        return (namespace or {}).get("metadata", {}).get("annotations", {}).get(NOTICE_ANNOTATION)

    assert eventually(notice, what="the notice on the Namespace", timeout=90) == AMBIENT_HEADER_NOTICE
    assert header_keys(rules(kubectl, name) or []) == [HEADER_KEYS]
    assert kubectl.get(FILTER, ENVOY_FILTER_NAME, name) is None
    kubectl.run("annotate", "namespace", name, f"{MODE_ANNOTATION}=token", "--overwrite")
    eventually(lambda: notice() is None, what="the notice removed", timeout=90)
    eventually(
        lambda: header_keys(rules(kubectl, name) or []) == [TOKEN_KEYS], what="the token rule", timeout=90
    )
