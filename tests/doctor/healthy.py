"""A snapshot of a healthy cluster built from the shipped manifests, for the checks to find nothing in;
each test then breaks it in exactly one way."""

from __future__ import annotations

import base64
import copy
import datetime
from pathlib import Path
from typing import Any

import yaml

from doctor import shipped
from doctor.checks.namespaces import KATIB_INJECTION_LABEL as KATIB
from doctor.snapshot import Snapshot
from hooks.desired import CURRENT_ISTIO, desired
from hooks.identity import MODE_ANNOTATION, MODE_LABEL, Identity
from service import certificates
from service.certificate_rotation import DEFAULT_SECRET
from service.config import Config

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
CONFIG = Config()
HEADER, TOKEN = "alice", "bob"
"""Two profile namespaces: one in the default header mode, one annotated token."""
WEBHOOK_NAMESPACE, WEBHOOK_SERVICE = shipped.webhook_service()
HOOKS_NAMESPACE, HOOKS_SERVICE = "kubeflow-extension", "kubeflow-extension-hooks"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def manifest(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]


CA = certificates.new_ca("doctor-test-ca", NOW - datetime.timedelta(days=1), datetime.timedelta(days=3650))
OTHER_CA = certificates.new_ca("another-ca", NOW - datetime.timedelta(days=1), datetime.timedelta(days=3650))


def serving_secret(
    ca: certificates.KeyPair = CA,
    validity: datetime.timedelta = datetime.timedelta(days=90),
    dns_names: tuple[str, ...] = (f"{WEBHOOK_SERVICE}.{WEBHOOK_NAMESPACE}.svc",),
) -> dict[str, Any]:
    pair = certificates.issue(ca, "webhook", NOW - datetime.timedelta(days=1), validity, dns_names=dns_names)
    return {
        "kind": "Secret",
        "metadata": {"name": DEFAULT_SECRET, "namespace": WEBHOOK_NAMESPACE},
        "data": {"tls.crt": _b64(pair.cert), "ca-bundle.crt": _b64(ca.cert)},
    }


def webhook_configuration() -> dict[str, Any]:
    configuration = copy.deepcopy(dict(shipped.webhook_configuration()))
    for entry in configuration["webhooks"]:
        entry["clientConfig"]["caBundle"] = _b64(CA.cert)
    return configuration


def service(namespace: str, name: str, ready: bool | None = True) -> list[dict[str, Any]]:
    """The Service and its EndpointSlice, with one endpoint in the given readiness."""
    conditions = {} if ready is None else {"ready": ready}
    return [
        {"kind": "Service", "metadata": {"name": name, "namespace": namespace}},
        {
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-abcde",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "endpoints": [{"addresses": ["10.0.0.7"], "conditions": conditions}],
        },
    ]


def workload(
    kind: str, name: str, namespace: str, image: str, account: str = "default", **env: str
) -> dict[str, Any]:
    container = {"image": image, "env": [{"name": k, "value": v} for k, v in env.items()]}
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"serviceAccountName": account, "containers": [container]}}},
        "status": {"readyReplicas": 1},
    }


def node(name: str, kubelet: str) -> dict[str, Any]:
    return {"kind": "Node", "metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": kubelet}}}


def profile_namespace(name: str, mode: str, annotated: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    labels = {"app.kubernetes.io/part-of": "kubeflow-profile", MODE_LABEL: mode}
    annotations = {MODE_ANNOTATION: mode} if annotated else {}
    namespace = {
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
    }
    profile = {
        "kind": "Profile",
        "metadata": {"name": name},
        "spec": {"owner": {"name": f"{name}@example.com"}},
    }
    return namespace, profile


def children(name: str, profile: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return desired(name, profile, CURRENT_ISTIO, CONFIG, identity=Identity(mode, "test"))


def snapshot() -> Snapshot:
    alice, alice_profile = profile_namespace(HEADER, "header", annotated=False)
    bob, bob_profile = profile_namespace(TOKEN, "token", annotated=True)
    rbac = manifest("metacontroller/base/metacontroller-rbac.yaml")
    (controller,) = manifest("metacontroller/base/decorator-controller.yaml")
    return Snapshot(
        now=NOW,
        server_version="v1.30.2",
        webhook_configurations=(webhook_configuration(),),
        services=tuple(
            d
            for d in service(WEBHOOK_NAMESPACE, WEBHOOK_SERVICE) + service(HOOKS_NAMESPACE, HOOKS_SERVICE)
            if d["kind"] == "Service"
        ),
        endpoint_slices=tuple(
            d
            for d in service(WEBHOOK_NAMESPACE, WEBHOOK_SERVICE) + service(HOOKS_NAMESPACE, HOOKS_SERVICE)
            if d["kind"] == "EndpointSlice"
        ),
        secrets=(serving_secret(),),
        workloads=(
            workload(
                "StatefulSet",
                "metacontroller",
                "metacontroller",
                "ghcr.io/metacontroller/metacontroller:v4.17.2",
                account="metacontroller",
            ),
            # Native sidecars forced, on nodes that have them.
            workload(
                "Deployment",
                "istiod",
                "istio-system",
                "docker.io/istio/pilot:1.22.1",
                ENABLE_NATIVE_SIDECARS="true",
            ),
            workload("Deployment", "ml-pipeline", "kubeflow", "gcr.io/ml-pipeline/api-server:2.0.5"),
            workload(
                "Deployment",
                "katib-controller",
                "kubeflow",
                "ghcr.io/kubeflow/katib/katib-controller:v0.17.0",
            ),
        ),
        decorator_controllers=({**controller, "metadata": {**controller["metadata"]}},),
        cluster_roles=tuple(d for d in rbac if d["kind"] == "ClusterRole"),
        cluster_role_bindings=tuple(d for d in rbac if d["kind"] == "ClusterRoleBinding"),
        namespaces=(
            {
                **alice,
                "metadata": {
                    **alice["metadata"],
                    "labels": {**alice["metadata"]["labels"], KATIB: "enabled"},
                },
            },
            {
                **bob,
                "metadata": {**bob["metadata"], "labels": {**bob["metadata"]["labels"], KATIB: "enabled"}},
            },
            {"kind": "Namespace", "metadata": {"name": "kube-system"}},
        ),
        profiles=(alice_profile, bob_profile),
        children=tuple(children(HEADER, alice_profile, "header") + children(TOKEN, bob_profile, "token")),
        service_accounts=tuple(
            {"kind": "ServiceAccount", "metadata": {"name": CONFIG.service_account, "namespace": n}}
            for n in (HEADER, TOKEN)
        ),
        nodes=(node("node-a", "v1.30.2"), node("node-b", "v1.29.0")),
    )
