"""The Istio objects, checked against what Istio and KFP require of them (reference facts, not the code)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hooks import istio
from service.config import Config

CONFIG = Config()


def test_authorization_policy_admits_only_the_namespace_editor_with_the_owner_header() -> None:
    policy = istio.authorization_policy("security.istio.io/v1", "team-a", "bob@example.com", CONFIG)
    assert policy["metadata"]["namespace"] == "kubeflow"
    assert policy["spec"]["selector"] == {"matchLabels": {"app": "ml-pipeline"}}
    assert policy["spec"]["action"] == "ALLOW"
    (rule,) = policy["spec"]["rules"]
    assert rule["from"] == [{"source": {"principals": ["cluster.local/ns/team-a/sa/default-editor"]}}]
    # Only the HTTP API, where the EnvoyFilter sets the header; not gRPC 8887.
    assert rule["to"] == [{"operation": {"ports": ["8888"]}}]
    assert rule["when"] == [{"key": "request.headers[kubeflow-userid]", "values": ["bob@example.com"]}]


def test_authorization_names_are_unique_per_namespace_in_the_shared_namespace() -> None:
    names = {
        istio.authorization_policy("security.istio.io/v1beta1", ns, "o", CONFIG)["metadata"]["name"]
        for ns in ("a", "b", "a-b", "ab")
    }
    assert len(names) == 4


def test_service_role_binding_binds_kfp_role_to_principal_and_header() -> None:
    binding = istio.service_role_binding("rbac.istio.io/v1alpha1", "team-a", "bob@example.com", CONFIG)
    assert binding["kind"] == "ServiceRoleBinding"
    assert binding["spec"]["roleRef"] == {"kind": "ServiceRole", "name": "ml-pipeline-services"}
    assert binding["spec"]["subjects"] == [
        {
            "properties": {
                "source.principal": "cluster.local/ns/team-a/sa/default-editor",
                "request.headers[kubeflow-userid]": "bob@example.com",
            }
        }
    ]


def _header(filter_: dict[str, Any]) -> dict[str, Any]:
    (patch,) = filter_["spec"]["configPatches"]
    assert patch["applyTo"] == "VIRTUAL_HOST"
    assert patch["match"]["context"] == "SIDECAR_OUTBOUND"
    assert (
        patch["match"]["routeConfiguration"]["vhost"]["name"] == "ml-pipeline.kubeflow.svc.cluster.local:8888"
    )
    assert patch["patch"]["operation"] == "MERGE"
    header: dict[str, Any]
    (header,) = patch["patch"]["value"]["request_headers_to_add"]
    return header


def test_envoy_filter_overwrites_the_header_for_labelled_workloads() -> None:
    filter_ = istio.envoy_filter(
        "networking.istio.io/v1alpha3", "team-a", "bob@example.com", CONFIG, legacy=False
    )
    assert filter_["metadata"]["namespace"] == "team-a"
    assert filter_["spec"]["workloadSelector"] == {"labels": {"kubeflow-extension": "true"}}
    header = _header(filter_)
    assert header["header"] == {"key": "kubeflow-userid", "value": "bob@example.com"}
    assert header["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"
    assert "append" not in header


def test_legacy_envoy_filter_uses_the_field_old_envoy_knows() -> None:
    header = _header(istio.envoy_filter("networking.istio.io/v1alpha3", "t", "o", CONFIG, legacy=True))
    assert header["append"] is False
    assert "append_action" not in header


def test_configuration_reaches_every_object() -> None:
    config = dataclasses.replace(
        CONFIG,
        kubeflow_namespace="kf",
        service_account="runner",
        userid_header="x-goog-authenticated-user-email",
        userid_prefix="accounts.google.com:",
        ml_pipeline_port=9999,
        cluster_domain="corp.local",
        workload_label="example.com/kfp",
    )
    policy = istio.authorization_policy("security.istio.io/v1", "t", "o@x", config)
    assert policy["metadata"]["namespace"] == "kf"
    (rule,) = policy["spec"]["rules"]
    assert rule["from"][0]["source"]["principals"] == ["corp.local/ns/t/sa/runner"]
    assert rule["to"] == [{"operation": {"ports": ["9999"]}}]
    assert rule["when"][0] == {
        "key": "request.headers[x-goog-authenticated-user-email]",
        "values": ["accounts.google.com:o@x"],
    }
    filter_ = istio.envoy_filter("networking.istio.io/v1alpha3", "t", "o@x", config, legacy=False)
    assert filter_["spec"]["workloadSelector"]["labels"] == {"example.com/kfp": "true"}
    vhost = filter_["spec"]["configPatches"][0]["match"]["routeConfiguration"]["vhost"]["name"]
    assert vhost == "ml-pipeline.kf.svc.corp.local:9999"
    assert _header_value(filter_) == "accounts.google.com:o@x"


def _header_value(filter_: dict[str, Any]) -> str:
    value: str = filter_["spec"]["configPatches"][0]["patch"]["value"]["request_headers_to_add"][0]["header"][
        "value"
    ]
    return value


def test_every_object_is_labelled_as_ours() -> None:
    for obj in (
        istio.authorization_policy("security.istio.io/v1", "t", "o", CONFIG),
        istio.service_role_binding("rbac.istio.io/v1alpha1", "t", "o", CONFIG),
        istio.envoy_filter("networking.istio.io/v1alpha3", "t", "o", CONFIG, legacy=False),
    ):
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeflow-extension"
