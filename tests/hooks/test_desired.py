from __future__ import annotations

from typing import Any

import pytest

from hooks.desired import (
    CURRENT_ISTIO,
    LEGACY_ISTIO,
    AttachmentType,
    desired,
    profile_owner,
    related_rules,
    supported_types,
)
from service.config import Config
from tests.hooks.conftest import profile

CONFIG = Config()


def kinds(attachments: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(a["kind"], a["apiVersion"], a["metadata"]["namespace"]) for a in attachments]


def test_profile_namespace_gets_policy_in_kubeflow_and_filter_in_itself() -> None:
    result = desired("alice", profile("alice"), CURRENT_ISTIO, CONFIG)
    assert sorted(kinds(result)) == [
        ("AuthorizationPolicy", "security.istio.io/v1beta1", "kubeflow"),
        ("EnvoyFilter", "networking.istio.io/v1alpha3", "alice"),
    ]


def test_legacy_types_yield_service_role_binding_and_old_header_form() -> None:
    result = desired("alice", profile("alice"), LEGACY_ISTIO, CONFIG)
    assert sorted(k for k, _, _ in kinds(result)) == ["EnvoyFilter", "ServiceRoleBinding"]
    (filter_,) = [a for a in result if a["kind"] == "EnvoyFilter"]
    header = filter_["spec"]["configPatches"][0]["patch"]["value"]["request_headers_to_add"][0]
    assert header["append"] is False


@pytest.mark.parametrize("version", ["security.istio.io/v1beta1", "security.istio.io/v1"])
def test_authorization_policy_version_follows_the_controller(version: str) -> None:
    types = (AttachmentType(version, "AuthorizationPolicy"),)
    (policy,) = desired("alice", profile("alice"), types, CONFIG)
    assert policy["apiVersion"] == version


@pytest.mark.parametrize(
    "the_profile",
    [
        None,
        profile("alice", owner=None),
        profile("alice", owner=""),
        profile("alice", owner="  "),
        profile("alice", owner="a\nb"),
        {"spec": "not a map"},
        {"spec": {"owner": {"name": 7}}},
    ],
)
def test_no_usable_owner_means_no_attachments(the_profile: dict[str, Any] | None) -> None:
    assert desired("alice", the_profile, CURRENT_ISTIO, CONFIG) == []


def test_kubeflow_namespace_itself_gets_nothing() -> None:
    assert desired("kubeflow", profile("kubeflow"), CURRENT_ISTIO, CONFIG) == []


def test_only_declared_supported_types_are_built() -> None:
    types = supported_types([("v1", "configmaps"), ("networking.istio.io/v1alpha3", "envoyfilters")])
    assert [t.kind for t in types] == ["EnvoyFilter"]
    (only,) = desired("alice", profile("alice"), types, CONFIG)
    assert only["kind"] == "EnvoyFilter"


def test_supported_types_are_ordered_whatever_the_declaration_order() -> None:
    declared = [
        ("security.istio.io/v1", "authorizationpolicies"),
        ("networking.istio.io/v1alpha3", "envoyfilters"),
    ]
    assert supported_types(declared) == supported_types(list(reversed(declared)))


def test_owner_is_read_from_spec_owner_name() -> None:
    assert profile_owner(profile("x", owner="carol@example.com")) == "carol@example.com"


def test_customize_asks_for_the_profile_named_like_the_namespace() -> None:
    assert related_rules("team-b") == [
        {"apiVersion": "kubeflow.org/v1", "resource": "profiles", "names": ["team-b"]}
    ]


def _header(attachments: list[dict[str, Any]]) -> dict[str, Any]:
    (filter_,) = [a for a in attachments if a["kind"] == "EnvoyFilter"]
    headers: list[dict[str, Any]] = filter_["spec"]["configPatches"][0]["patch"]["value"][
        "request_headers_to_add"
    ]
    return headers[0]


def test_header_form_annotation_chooses_the_envoy_field_whatever_the_authorization_kind() -> None:
    old = desired("alice", profile("alice"), CURRENT_ISTIO, CONFIG, header_form="append")
    assert {a["kind"] for a in old} == {"AuthorizationPolicy", "EnvoyFilter"}
    assert _header(old)["append"] is False
    assert "append_action" not in _header(old)
    new = desired("alice", profile("alice"), LEGACY_ISTIO, CONFIG, header_form="append-action")
    assert _header(new)["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"
    assert "append" not in _header(new)
