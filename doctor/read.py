"""The edge: read the objects the checks need through the kubernetes client, as the API server's JSON.

Only GET requests are made. A resource whose API is not served (a CRD not installed) reads as empty; a
refused read (403) is recorded in the snapshot, so the report says which checks it could not make
rather than passing them.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kubeconfig

from doctor import shipped
from doctor.checks import metacontroller, versions, webhook
from doctor.snapshot import Object, Snapshot, Unreadable
from hooks.istio import MANAGED_BY
from service.certificate_rotation import DEFAULT_SECRET
from service.config import Config

MANAGED = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())


class ReadError(Exception):
    """The cluster could not be read at all (no kubeconfig, unreachable, unauthorized)."""


class Reader:
    def __init__(self, api: Any) -> None:
        self.api = api
        self.unreadable: list[Unreadable] = []

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        method, url, headers, body, post = self.api.param_serialize(
            "GET",
            path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, body=body, post_params=post)
            response.read()
        except (OSError, urllib3.exceptions.HTTPError) as error:  # unreachable, TLS
            raise ReadError(f"GET {path}: {error}") from None
        except k8s.ApiException as error:
            return self._failed(path, error.status, error.reason)
        if not 200 <= response.status < 300:
            return self._failed(path, response.status, response.reason)
        return json.loads(response.data)

    def _failed(self, path: str, status: int, reason: str) -> None:
        """None for an API that is not served (404) or a refused read (403, recorded); else the cluster
        cannot be read at all."""
        if status == 403:
            self.unreadable.append(Unreadable(path, None, "forbidden"))
        elif status != 404:
            raise ReadError(f"GET {path}: {status} {reason}")

    def items(self, path: str, kind: str, **query: str) -> tuple[Object, ...]:
        """A list's items, each with its ``kind`` (list items come without one)."""
        found = self._get(path, query) or {}
        return tuple({**item, "kind": kind} for item in found.get("items") or [])

    def one(self, path: str, kind: str) -> tuple[Object, ...]:
        found = self._get(path)
        return ({**found, "kind": kind},) if found else ()


def _service_refs(
    configurations: tuple[Object, ...], controllers: tuple[Object, ...]
) -> set[tuple[str, str]]:
    refs = set()
    for configuration in configurations:
        refs |= webhook.called_services(configuration)
    for controller in controllers:
        for hook in metacontroller.HOOKS:
            service = (
                ((controller.get("spec") or {}).get("hooks") or {})
                .get(hook, {})
                .get("webhook", {})
                .get("service")
            )
            if service:
                refs.add((str(service.get("namespace") or "default"), str(service.get("name"))))
    return refs


def snapshot(api: Any, config: Config) -> Snapshot:
    read = Reader(api)
    version = read._get("/version") or {}
    configurations = read.items(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", "MutatingWebhookConfiguration"
    )
    controllers = read.items(
        "/apis/metacontroller.k8s.io/v1alpha1/decoratorcontrollers", "DecoratorController"
    )
    services: tuple[Object, ...] = ()
    slices: tuple[Object, ...] = ()
    for namespace, name in sorted(_service_refs(configurations, controllers)):
        services += read.one(f"/api/v1/namespaces/{namespace}/services/{name}", "Service")
        slices += read.items(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            "EndpointSlice",
            labelSelector=f"kubernetes.io/service-name={name}",
        )
    webhook_namespace = shipped.webhook_service()[0]
    certificates = read.items(
        f"/apis/cert-manager.io/v1/namespaces/{webhook_namespace}/certificates", "Certificate"
    )
    secret_names = {DEFAULT_SECRET} | {str((c.get("spec") or {}).get("secretName")) for c in certificates}
    secrets: tuple[Object, ...] = ()
    for name in sorted(secret_names):
        secrets += read.one(f"/api/v1/namespaces/{webhook_namespace}/secrets/{name}", "Secret")
    workloads = read.items("/apis/apps/v1/deployments", "Deployment") + read.items(
        "/apis/apps/v1/statefulsets", "StatefulSet"
    )
    # Every Node only where their kubelets' versions can matter: fewer reads, and no Node permission
    # needed otherwise.
    forced = versions.forcing_native_sidecars(workloads) is not None
    nodes = read.items("/api/v1/nodes", "Node") if forced else ()
    return Snapshot(
        now=datetime.datetime.now(datetime.UTC),
        server_version=version.get("gitVersion"),
        webhook_configurations=configurations,
        services=services,
        endpoint_slices=slices,
        secrets=secrets,
        certificates=certificates,
        workloads=workloads,
        decorator_controllers=controllers,
        cluster_roles=read.items("/apis/rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole"),
        cluster_role_bindings=read.items(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding"
        ),
        namespaces=read.items("/api/v1/namespaces", "Namespace"),
        profiles=read.items("/apis/kubeflow.org/v1/profiles", "Profile"),
        children=read.items(
            "/apis/security.istio.io/v1beta1/authorizationpolicies",
            "AuthorizationPolicy",
            labelSelector=MANAGED,
        )
        + read.items(
            "/apis/rbac.istio.io/v1alpha1/servicerolebindings", "ServiceRoleBinding", labelSelector=MANAGED
        )
        + read.items("/apis/networking.istio.io/v1alpha3/envoyfilters", "EnvoyFilter", labelSelector=MANAGED),
        service_accounts=read.items(
            "/api/v1/serviceaccounts",
            "ServiceAccount",
            fieldSelector=f"metadata.name={config.service_account}",
        ),
        nodes=nodes,
        unreadable=tuple(read.unreadable),
    )


def api_client(kubeconfig_path: str | None, context: str | None) -> Any:
    """A client configured as kubectl would be: ``--kubeconfig``, else $KUBECONFIG or ~/.kube/config, else
    the in-cluster service account."""
    try:
        return kubeconfig.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig_path, context=context
        )
    except (kubeconfig.ConfigException, OSError) as error:
        if kubeconfig_path or context:
            raise ReadError(str(error)) from None
    try:
        kubeconfig.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubeconfig.ConfigException as error:
        raise ReadError(f"no kubeconfig and not in a cluster: {error}") from None
    return k8s.ApiClient()
