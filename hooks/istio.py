"""One builder per Istio object the hooks return. Pure functions of (namespace, owner, config).

Names are fixed per namespace so that re-running a builder yields the same object, and Metacontroller
updates it in place rather than creating a second one.
"""

from __future__ import annotations

from typing import Any

from service.config import Config

MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeflow-extension"}
NAMESPACE_LABEL = "kubeflow-extension.kubeflow.org/namespace"
ENVOY_FILTER_NAME = "kubeflow-extension-userid"

Object = dict[str, Any]


def authorization_name(namespace: str) -> str:
    """One authorization object per user namespace in the shared Kubeflow namespace."""
    return f"kubeflow-extension-{namespace}"


def _metadata(name: str, namespace: str, user_namespace: str) -> Object:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**MANAGED_BY, NAMESPACE_LABEL: user_namespace},
    }


def authorization_policy(
    api_version: str, namespace: str, owner: str, config: Config, *, header: bool = True, token: bool = False
) -> Object:
    """Lets the namespace's service account reach ml-pipeline: with the owner's identity header (`header`),
    and/or with a bearer token and no identity header at all (`token`); both rules in `both` mode.

    The header rule's `when` is what makes the header unspoofable from this namespace: a workload that sends
    another user's id fails the policy, and the EnvoyFilter overwrites whatever the workload sent. The token
    rule forbids the header outright, so a namespace in token mode cannot act as anyone by header, and
    KFP (which tries the header before the token) must authenticate it by its token.

    The header rule opens only the HTTP port: the EnvoyFilter sets the header there alone, and the KFP SDK
    (so Kale and notebooks) calls it; the gRPC port (8887), which KFP's own backend components call, gets
    no header, so granting it by header would only serve a workload that sets the header itself. Istio
    matches the port the ml-pipeline Pod receives on, equal to the Service port in KFP.

    The token rule opens both ports: KFP's API server reads the token from the gRPC metadata, on the gRPC
    port directly and on the HTTP port through its gateway, and checks it the same way on either
    (TokenReview, then SubjectAccessReview), so the port adds nothing to what the token proves.
    """
    rules = []
    if header:
        rules.append(
            {
                "from": [{"source": {"principals": [config.principal(namespace)]}}],
                "to": [{"operation": {"ports": [str(config.ml_pipeline_port)]}}],
                "when": [
                    {"key": f"request.headers[{config.userid_header}]", "values": [config.userid(owner)]}
                ],
            }
        )
    if token:
        rules.append(
            {
                "from": [{"source": {"principals": [config.principal(namespace)]}}],
                "when": [
                    # "*" is Istio's presence match; as notValues it admits only a request without the header.
                    {"key": "request.headers[authorization]", "values": ["*"]},
                    {"key": f"request.headers[{config.userid_header}]", "notValues": ["*"]},
                ],
            }
        )
    return {
        "apiVersion": api_version,
        "kind": "AuthorizationPolicy",
        "metadata": _metadata(authorization_name(namespace), config.kubeflow_namespace, namespace),
        "spec": {
            "action": "ALLOW",
            "selector": {"matchLabels": {"app": config.ml_pipeline_service}},
            "rules": rules,
        },
    }


def service_role_binding(api_version: str, namespace: str, owner: str, config: Config) -> Object:
    """The Istio < 1.6 form of authorization_policy: a binding to KFP's `ml-pipeline-services` role."""
    return {
        "apiVersion": api_version,
        "kind": "ServiceRoleBinding",
        "metadata": _metadata(authorization_name(namespace), config.kubeflow_namespace, namespace),
        "spec": {
            "roleRef": {"kind": "ServiceRole", "name": "ml-pipeline-services"},
            "subjects": [
                {
                    "properties": {
                        "source.principal": config.principal(namespace),
                        f"request.headers[{config.userid_header}]": config.userid(owner),
                    }
                }
            ],
        },
    }


def envoy_filter(api_version: str, namespace: str, owner: str, config: Config, *, legacy: bool) -> Object:
    """Sets the identity header on requests from labelled workloads to ml-pipeline, replacing any value
    the workload sent.

    Envoy >= 1.23 (Istio >= 1.15) replaces a header with `append_action`; the Envoy of Istio 1.3-1.5
    (`legacy`) only knows `append: false`, which means the same. No Envoy accepts both fields.
    """
    header: Object = {"header": {"key": config.userid_header, "value": config.userid(owner)}}
    if legacy:
        header["append"] = False
    else:
        header["append_action"] = "OVERWRITE_IF_EXISTS_OR_ADD"
    return {
        "apiVersion": api_version,
        "kind": "EnvoyFilter",
        "metadata": _metadata(ENVOY_FILTER_NAME, namespace, namespace),
        "spec": {
            "workloadSelector": {"labels": {config.workload_label: "true"}},
            "configPatches": [
                {
                    "applyTo": "VIRTUAL_HOST",
                    "match": {
                        "context": "SIDECAR_OUTBOUND",
                        "routeConfiguration": {
                            "vhost": {"name": f"{config.ml_pipeline_host}:{config.ml_pipeline_port}"}
                        },
                    },
                    "patch": {"operation": "MERGE", "value": {"request_headers_to_add": [header]}},
                }
            ],
        },
    }
