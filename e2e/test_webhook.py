"""The webhook through a real kube-apiserver: the project's MutatingWebhookConfiguration, localized to
the webhook process over TLS, admitting Jobs and Pods created through the API."""

from __future__ import annotations

import base64
import functools
import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, KubectlError, LocalService
from e2e.framework import objects
from e2e.framework.processes import eventually
from e2e.framework.stubs import JsonHandler
from tests.webhook import katib_objects
from webhook.mutations import collector, kale

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-trials"
OUTSIDE = "e2e-not-a-profile"


@pytest.fixture(scope="module")
def admission(
    control_plane: ControlPlane, kubectl: Kubectl, webhook_server: LocalService
) -> list[dict[str, Any]]:
    """The shipped webhook configuration pointed at the local webhook; a profile namespace to use."""
    documents = control_plane.apply_project_manifests(
        REPO_ROOT / "webhook" / "manifests", webhook=webhook_server
    )
    for name, labels in ((NAMESPACE, {"app.kubernetes.io/part-of": "kubeflow-profile"}), (OUTSIDE, {})):
        kubectl.apply(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}]
        )
        kubectl.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default-editor", "namespace": name},
                }
            ]
        )
        eventually(
            functools.partial(kubectl.get, "serviceaccount", "default", name), what=f"default SA in {name}"
        )
    return documents


def create(kubectl: Kubectl, obj: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """Create through the API and return the object as stored (after admission)."""
    return objects.create(kubectl, obj, namespace)


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def reviews(webhook: LocalService) -> float:
    """How many reviews the webhook process has answered so far (its own Prometheus counter)."""
    context = ssl.create_default_context(cafile=str(webhook.ca_file))
    with urllib.request.urlopen(f"{webhook.url}/metrics", context=context, timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kfext_webhook_requests_total{")
    )


@pytest.mark.usefixtures("admission")
def test_trial_job_and_the_pod_its_controller_makes_are_stored_mutated(kubectl: Kubectl) -> None:
    stored = objects.create_kale_trial_job(kubectl, "random-exp-x7k2p", NAMESPACE)
    template = stored["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["labels"]["kubeflow-extension"] == "true"
    assert template["spec"]["serviceAccountName"] == "default-editor"

    pods = eventually(
        lambda: kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", "batch.kubernetes.io/job-name=random-exp-x7k2p"
        )["items"],
        what="the Job controller's Pod",
    )
    pod = pods[0]
    assert pod["spec"]["serviceAccountName"] == "default-editor"
    assert pod["metadata"]["labels"]["kubeflow-extension"] == "true"
    # The Pod runs Kale's program: the trial-pods webhook patched its polling.
    assert kale.MARKER in container(pod, "main")["command"][0]


@pytest.mark.usefixtures("admission")
@pytest.mark.parametrize("version", ["v0.10", "v0.19"])
def test_katib_trial_pod_is_stored_with_the_wrapped_collector(kubectl: Kubectl, version: str) -> None:
    pod = katib_objects.trial_pod(version, proxy="classic")
    pod["metadata"]["generateName"] = f"trial-{version.replace('.', '-')}-"
    sent = container(pod, "metrics-logger-and-collector")
    stored = container(create(kubectl, pod), "metrics-logger-and-collector")
    assert collector.is_wrapper(stored["command"])
    assert stored["command"][3] == "metrics-logger-and-collector"
    assert stored["args"].count("-w=false") == 1
    assert [a for a in stored["args"] if a != "-w=false"] == [
        a for a in collector.wait_only_for_main(sent["args"]) if a != "-w=false"
    ]


@pytest.mark.usefixtures("admission")
def test_native_sidecar_trial_pod_only_stops_waiting_for_the_proxy(kubectl: Kubectl) -> None:
    pod = katib_objects.trial_pod("v0.19", proxy="native")
    pod["metadata"]["generateName"] = "trial-native-"
    stored = container(create(kubectl, pod), "metrics-logger-and-collector")
    assert "command" not in stored
    assert "-w=false" in stored["args"]


@pytest.mark.usefixtures("admission")
@pytest.mark.parametrize("kale_version", ["0.6", "0.7"])
def test_kale_trial_pod_is_stored_with_the_retry_program(
    kubectl: Kubectl, webhook_server: LocalService, kale_version: str
) -> None:
    pod = katib_objects.trial_pod("v0.19", proxy="classic", kale=kale_version)
    pod["metadata"]["generateName"] = f"kale-{kale_version.replace('.', '-')}-"
    stored = create(kubectl, pod)
    main = stored["spec"]["containers"][0]
    assert kale.MARKER in main["args"][0]
    assert main["args"][0].count(kale.MARKER) == 1
    # The audit line, as the service writes it by default: one JSON object per line (the harness adds
    # a "==> command" line at each start).
    log = webhook_server.log_path.read_text().splitlines()
    entries = [json.loads(line) for line in log if line and not line.startswith("==> ")]
    names = (stored["metadata"]["name"], stored["metadata"]["generateName"])
    (audit,) = [e for e in entries if e["message"] == "admitted" and e.get("object") in names]
    fields = ("level", "logger", "kind", "namespace", "mutations", "warnings", "dry_run")
    assert {k: audit[k] for k in fields} == {
        "level": "info", "logger": "webhook.app", "kind": "Pod", "namespace": NAMESPACE,
        "mutations": "collector+kale", "warnings": [], "dry_run": False,
    }  # fmt: skip
    assert audit["operations"] >= 3  # the wait flag, the collector's wrapper, the retry program
    assert audit["uid"] and audit["time"]


@pytest.mark.usefixtures("admission")
def test_notebook_pod_is_labelled(kubectl: Kubectl) -> None:
    stored = create(kubectl, katib_objects.notebook_pod())
    assert stored["metadata"]["labels"]["kubeflow-extension"] == "true"


@pytest.mark.usefixtures("admission")
def test_other_pods_and_jobs_and_other_namespaces_are_untouched(kubectl: Kubectl) -> None:
    plain_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1", "args": ["-w", "true"]}]},
    }
    stored = create(kubectl, plain_pod)
    assert stored["metadata"]["labels"] == {"app": "x"}
    assert stored["spec"]["containers"][0]["args"] == ["-w", "true"]
    plain_job = katib_objects.trial_job(kale="0.7")
    plain_job["metadata"]["name"] = "not-a-trial"
    plain_job["metadata"]["ownerReferences"] = []
    stored_job = create(kubectl, plain_job)
    assert stored_job["spec"]["template"]["spec"]["serviceAccountName"] == "pipeline-runner"
    assert stored_job["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    notebook = create(kubectl, katib_objects.notebook_pod(), namespace=OUTSIDE)
    assert "kubeflow-extension" not in notebook["metadata"]["labels"]


class _LateWebhook(JsonHandler):
    """Runs after ours (its configuration's name sorts later) and undoes our collector wrapping, as a
    webhook that rewrites containers would."""

    calls = 0

    def do_POST(self) -> None:
        review = self.read_json()
        pod = review["request"]["object"]
        patch: list[dict[str, str | list[str]]] = []
        for index, c in enumerate(pod["spec"]["containers"]):
            if c["name"] == "metrics-logger-and-collector" and "command" in c:
                patch.append({"op": "remove", "path": f"/spec/containers/{index}/command"})
                patch.append(
                    {
                        "op": "replace",
                        "path": f"/spec/containers/{index}/args",
                        "value": ["-t", "late", "-w", "true"],
                    }
                )
        type(self).calls += 1
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        if patch:
            response |= {
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
            }
        self.answer(200, {**review, "response": response})


@pytest.fixture
def late_webhook(control_plane: ControlPlane, kubectl: Kubectl) -> Iterator[None]:
    tls = control_plane.ca.issue_loopback_serving("late-webhook")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LateWebhook)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "zz-e2e-late-webhook"},
        "webhooks": [
            {
                "name": "late.e2e.example.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{server.server_address[1]}/",
                    "caBundle": base64.b64encode(control_plane.ca.cert_pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                    }
                ],
                "objectSelector": {"matchLabels": {"e2e-late": "true"}},
            }
        ],
    }
    kubectl.apply([configuration])
    time.sleep(2)  # the API server picks up configuration changes asynchronously
    try:
        yield
    finally:
        kubectl.run("delete", "mutatingwebhookconfiguration", "zz-e2e-late-webhook")
        server.shutdown()


@pytest.mark.usefixtures("admission", "late_webhook")
def test_a_later_webhook_undoing_our_change_makes_the_api_server_call_us_again(
    kubectl: Kubectl, webhook_server: LocalService
) -> None:
    pod = katib_objects.trial_pod("v0.19", proxy="classic")
    pod["metadata"]["generateName"] = "trial-reinvoked-"
    pod["metadata"]["labels"]["e2e-late"] = "true"
    before, late_before = reviews(webhook_server), _LateWebhook.calls
    stored = container(create(kubectl, pod), "metrics-logger-and-collector")
    assert _LateWebhook.calls == late_before + 1
    assert reviews(webhook_server) - before == 2  # the first call, then the reinvocation
    assert collector.is_wrapper(stored["command"])
    assert stored["args"] == ["-t", "late", "-w=false"]


def _failure_policies(documents: list[dict[str, Any]]) -> dict[str, str]:
    (configuration,) = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    return {w["name"].split(".")[0]: w["failurePolicy"] for w in configuration["webhooks"]}


def test_webhook_down_behaves_as_the_shipped_failure_policies_promise(
    admission: list[dict[str, Any]], kubectl: Kubectl, webhook_server: LocalService
) -> None:
    policies = _failure_policies(admission)
    assert set(policies) == {"trial-jobs", "trial-pods", "notebook-pods"}
    job = katib_objects.trial_job(kale="0.7")
    job["metadata"]["name"] = "while-down"
    trial_pod = katib_objects.trial_pod("v0.19", proxy="classic")
    trial_pod["metadata"]["generateName"] = "while-down-"
    cases = {"trial-jobs": job, "trial-pods": trial_pod, "notebook-pods": katib_objects.notebook_pod()}
    cases["notebook-pods"]["metadata"]["name"] = "notebook-while-down"
    webhook_server.stop()
    try:
        for webhook, obj in cases.items():
            if policies[webhook] == "Fail":
                with pytest.raises(KubectlError, match="failed calling webhook"):
                    create(kubectl, obj)
            else:
                stored = create(kubectl, obj)
                assert "kubeflow-extension" not in stored["metadata"].get("labels", {})
    finally:
        webhook_server.start()
    # Back up: admission works again.
    notebook = katib_objects.notebook_pod()
    notebook["metadata"]["name"] = "notebook-after"
    assert create(kubectl, notebook)["metadata"]["labels"]["kubeflow-extension"] == "true"
