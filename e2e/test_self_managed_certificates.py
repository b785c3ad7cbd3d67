"""Self-managed webhook certificates against a real kube-apiserver: replicas that start together agree
on one Secret, the RBAC of the overlay is enough (and no more), and the API server trusts the result."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as kubeconfig

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, service_environment
from e2e.framework.manifests import localize_manifests
from e2e.framework.processes import ManagedProcess, free_port, wait_until
from service.certificate_rotation import Contents
from service.certificate_sync import Target, reconcile, write_files
from tests.webhook import katib_objects

pytestmark = pytest.mark.e2e

NAMESPACE = "kubeflow-extension"
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:kubeflow-extension-webhook"
SECRET = "kubeflow-extension-webhook-certificates"
PROFILE = "e2e-self-managed"
REPLICAS = 8
RETIRE_AFTER = datetime.timedelta(hours=3)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def overlay(control_plane: ControlPlane, kubectl: Kubectl, port: int) -> Iterator[list[dict[str, Any]]]:
    """The self-managed overlay, its webhook URL pointed at localhost:<port>. The caBundle starts as some
    other CA's, as after a reinstall: the webhook must replace it."""
    documents = localize_manifests(
        kubectl.kustomize(REPO_ROOT / "webhook" / "self-managed-certificates"),
        webhook_url=f"https://localhost:{port}",
        ca_bundle_pem=control_plane.ca.cert_pem,
    )
    kubectl.apply([d for d in documents if d["kind"] == "Namespace"])
    kubectl.apply(documents)
    yield documents
    kubectl.run("delete", "mutatingwebhookconfiguration", "kubeflow-extension", "--ignore-not-found")


def clients_as_the_webhook(kubeconfig_path: Path) -> tuple[Any, Any]:
    # kubernetes marks itself typed but leaves new_client_from_config unannotated.
    api = kubeconfig.new_client_from_config(config_file=str(kubeconfig_path))  # type: ignore[no-untyped-call]
    api.set_default_header("Impersonate-User", ACCOUNT)
    return client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)


def can(kubectl: Kubectl, *args: str) -> bool:
    result = kubectl.run("auth", "can-i", *args, f"--as={ACCOUNT}", check=False)
    return result.stdout.strip() == "yes"


@pytest.mark.usefixtures("overlay")
def test_the_webhook_account_may_touch_only_its_secret_and_its_configuration(kubectl: Kubectl) -> None:
    assert can(kubectl, "get", f"secret/{SECRET}", "-n", NAMESPACE)
    assert can(kubectl, "update", f"secret/{SECRET}", "-n", NAMESPACE)
    assert can(kubectl, "create", "secrets", "-n", NAMESPACE)
    assert can(kubectl, "patch", "mutatingwebhookconfiguration/kubeflow-extension")
    assert not can(kubectl, "get", "secret/other", "-n", NAMESPACE)
    assert not can(kubectl, "delete", f"secret/{SECRET}", "-n", NAMESPACE)
    assert not can(kubectl, "create", "secrets", "-n", "default")
    assert not can(kubectl, "patch", "mutatingwebhookconfiguration/istio-sidecar-injector")
    assert not can(kubectl, "list", "secrets", "-n", NAMESPACE)


def test_replicas_starting_together_agree_and_the_api_server_trusts_the_result(
    control_plane: ControlPlane, kubectl: Kubectl, overlay: list[dict[str, Any]], port: int, tmp_path: Path
) -> None:
    target = Target(NAMESPACE, SECRET, "kubeflow-extension", ("localhost",))
    now = datetime.datetime.now(datetime.UTC)
    results: list[Contents] = []
    errors: list[BaseException] = []
    start = threading.Barrier(REPLICAS)

    def replica() -> None:
        core, admission = clients_as_the_webhook(control_plane.kubeconfig)
        start.wait()
        try:
            results.append(reconcile(core, admission, target, now, RETIRE_AFTER))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=replica) for _ in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == REPLICAS
    assert all(r == results[0] for r in results)
    stored = kubectl("get", "secret", SECRET, "-n", NAMESPACE)
    assert base64.b64decode(stored["data"]["tls.crt"]) == results[0].serving.cert
    configuration = kubectl("get", "mutatingwebhookconfiguration", "kubeflow-extension")
    bundles = {base64.b64decode(w["clientConfig"]["caBundle"]) for w in configuration["webhooks"]}
    assert bundles == {results[0].bundle}

    # A second round finds nothing to do.
    core, admission = clients_as_the_webhook(control_plane.kubeconfig)
    assert reconcile(core, admission, target, now, RETIRE_AFTER) == results[0]
    assert (
        kubectl("get", "secret", SECRET, "-n", NAMESPACE)["metadata"]["resourceVersion"]
        == stored["metadata"]["resourceVersion"]
    )

    # The webhook serves the pair; kube-apiserver, trusting only the published bundle, calls it.
    write_files(results[0], tmp_path)
    webhook = ManagedProcess(
        "webhook-self-managed",
        [
            sys.executable,
            "-m",
            "kubeflow_extension",
            "serve",
            "webhook",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--certfile",
            str(tmp_path / "tls.crt"),
            "--keyfile",
            str(tmp_path / "tls.key"),
        ],
        tmp_path / "webhook.log",
        env=service_environment(),
        cwd=REPO_ROOT,
    )
    webhook.start()
    try:
        context = ssl.create_default_context(cadata=results[0].bundle.decode())

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=context, timeout=2):
                    return True
            except OSError:
                return False

        wait_until(healthy, timeout=30, what="the webhook with the self-managed certificate", watch=[webhook])
        kubectl.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": PROFILE,
                        "labels": {"app.kubernetes.io/part-of": "kubeflow-profile"},
                    },
                }
            ]
        )
        pod = katib_objects.notebook_pod()
        pod["metadata"]["namespace"] = PROFILE
        stored_pod = kubectl("create", "-f", "-", stdin=json.dumps(pod))
        assert stored_pod["metadata"]["labels"]["kubeflow-extension"] == "true"
    finally:
        webhook.stop()
