"""Identity modes in the hooks: which objects each mode yields, the per-namespace override, Istio ambient."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from hooks.app import create_app
from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, desired
from hooks.identity import (
    AMBIENT_HEADER_NOTICE,
    MODE_ANNOTATION,
    MODE_LABEL,
    NOTICE_ANNOTATION,
    Identity,
    namespace_annotations,
    namespace_labels,
    override,
    resolve,
)
from service.config import Config
from service.http import ClientError
from tests.hooks.conftest import namespace, profile, sync_request

PRINCIPAL = "cluster.local/ns/alice/sa/default-editor"
HEADER_RULE = {
    "from": [{"source": {"principals": [PRINCIPAL]}}],
    # Only ml-pipeline's HTTP port, where the EnvoyFilter sets the header.
    "to": [{"operation": {"ports": ["8888"]}}],
    "when": [{"key": "request.headers[kubeflow-userid]", "values": ["alice@example.com"]}],
}
TOKEN_RULE = {
    "from": [{"source": {"principals": [PRINCIPAL]}}],
    "when": [
        {"key": "request.headers[authorization]", "values": ["*"]},
        {"key": "request.headers[kubeflow-userid]", "notValues": ["*"]},
    ],
}


def by_kind(attachments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["kind"]: a for a in attachments}


def annotated(obj: dict[str, Any], mode: str) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[MODE_ANNOTATION] = mode
    return obj


def ambient_namespace(name: str = "alice") -> dict[str, Any]:
    ns = namespace(name)
    ns["metadata"]["labels"]["istio.io/dataplane-mode"] = "ambient"
    del ns["metadata"]["labels"]["istio-injection"]
    return ns


@pytest.mark.parametrize(
    ("mode", "rules", "envoy_filter"),
    [
        ("header", [HEADER_RULE], True),
        ("token", [TOKEN_RULE], False),
        ("both", [HEADER_RULE, TOKEN_RULE], True),
    ],
)
def test_each_mode_yields_its_rules_and_envoy_filter(mode: str, rules: list[Any], envoy_filter: bool) -> None:
    found = by_kind(desired("alice", profile("alice"), CURRENT_ISTIO, Config(identity_mode=mode)))
    assert found["AuthorizationPolicy"]["spec"]["rules"] == rules
    assert found["AuthorizationPolicy"]["spec"]["action"] == "ALLOW"
    assert ("EnvoyFilter" in found) is envoy_filter


def test_header_mode_from_the_configuration_is_the_default() -> None:
    assert desired("alice", profile("alice"), CURRENT_ISTIO, Config()) == desired(
        "alice", profile("alice"), CURRENT_ISTIO, Config(), identity=Identity("header", "configuration")
    )
    assert Config().identity_mode == "header"


@pytest.mark.parametrize("mode", ["token", "both"])
def test_token_identity_is_refused_for_istio_before_1_6(mode: str) -> None:
    with pytest.raises(ClientError) as refused:
        desired("alice", profile("alice"), LEGACY_ISTIO, Config(identity_mode=mode))
    assert refused.value.status == 422 and "AuthorizationPolicy" in refused.value.message


def test_the_namespace_annotation_wins_over_the_profile_and_the_configuration() -> None:
    ns, prof = annotated(namespace("alice"), "token"), annotated(profile("alice"), "both")
    assert resolve(Config(), override(ns, prof)) == Identity("token", "namespace annotation")
    assert resolve(Config(), override(namespace("alice"), prof)) == Identity("both", "profile annotation")
    assert resolve(Config(identity_mode="both"), override(namespace("alice"), None)) == Identity(
        "both", "configuration"
    )


def test_an_unknown_mode_in_an_annotation_is_a_422() -> None:
    with pytest.raises(ClientError) as refused:
        override(annotated(namespace("alice"), "tokens"), None)
    assert refused.value.status == 422 and "'tokens'" in refused.value.message


@pytest.mark.parametrize("mode", ["header", "both"])
def test_an_ambient_namespace_never_gets_an_envoy_filter(mode: str) -> None:
    identity = Identity(mode, "configuration")
    found = desired("alice", profile("alice"), CURRENT_ISTIO, Config(), identity=identity, on_ambient=True)
    assert set(by_kind(found)) == {"AuthorizationPolicy"}


def test_the_ambient_notice_is_set_only_for_header_mode_and_removed_when_it_no_longer_applies() -> None:
    header, token = Identity("header", "configuration"), Identity("token", "namespace annotation")
    assert namespace_annotations(header, True, None) == {NOTICE_ANNOTATION: AMBIENT_HEADER_NOTICE}
    assert namespace_annotations(header, True, AMBIENT_HEADER_NOTICE) is None
    assert namespace_annotations(token, True, AMBIENT_HEADER_NOTICE) == {NOTICE_ANNOTATION: None}
    assert namespace_annotations(header, False, AMBIENT_HEADER_NOTICE) == {NOTICE_ANNOTATION: None}
    assert namespace_annotations(header, False, None) is None
    assert MODE_ANNOTATION in AMBIENT_HEADER_NOTICE and "identity_mode: token" in AMBIENT_HEADER_NOTICE


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Config()))


def sync(client: TestClient, body: Any) -> Any:
    return client.post("/sync", content=json.dumps(body), headers={"content-type": "application/json"})


def test_sync_on_ambient_in_header_mode_annotates_the_namespace(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    answer = sync(client, sync_request(current_controller, ambient_namespace(), {"alice": profile("alice")}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["annotations"] == {NOTICE_ANNOTATION: AMBIENT_HEADER_NOTICE}
    assert [a["kind"] for a in answer.json()["attachments"]] == ["AuthorizationPolicy"]


def test_sync_with_a_token_annotation_on_ambient_removes_the_notice(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    ns = annotated(ambient_namespace(), "token")
    ns["metadata"]["annotations"][NOTICE_ANNOTATION] = AMBIENT_HEADER_NOTICE
    answer = sync(client, sync_request(current_controller, ns, {"alice": profile("alice")}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["annotations"] == {NOTICE_ANNOTATION: None}
    (policy,) = answer.json()["attachments"]
    assert policy["spec"]["rules"] == [TOKEN_RULE]


def test_sync_in_header_mode_answers_without_annotations_once_labelled(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    labelled = namespace("alice")
    labelled["metadata"]["labels"][MODE_LABEL] = "header"
    answer = sync(client, sync_request(current_controller, labelled, {"alice": profile("alice")}))
    assert set(answer.json()) == {"attachments"}


def test_the_mode_label_follows_the_mode_in_effect_and_leaves_unserved_namespaces() -> None:
    header, token = Identity("header", "configuration"), Identity("token", "profile annotation")
    assert namespace_labels(header, None, served=True) == {MODE_LABEL: "header"}
    assert namespace_labels(token, "header", served=True) == {MODE_LABEL: "token"}
    assert namespace_labels(token, "token", served=True) is None
    assert namespace_labels(token, "token", served=False) == {MODE_LABEL: None}
    assert namespace_labels(header, None, served=False) is None


@pytest.mark.parametrize(
    ("config_mode", "namespace_mode", "profile_mode", "label"),
    [
        ("header", None, None, "header"),
        ("header", "token", None, "token"),
        ("header", None, "both", "both"),
        ("token", "header", "both", "header"),
        ("token", None, None, "token"),
    ],
)
def test_sync_labels_the_namespace_with_the_mode_in_effect(
    current_controller: dict[str, Any],
    config_mode: str,
    namespace_mode: str | None,
    profile_mode: str | None,
    label: str,
) -> None:
    ns = annotated(namespace("alice"), namespace_mode) if namespace_mode else namespace("alice")
    owner = profile("alice")
    if profile_mode:
        owner["metadata"]["annotations"] = {MODE_ANNOTATION: profile_mode}
    app = TestClient(create_app(Config(identity_mode=config_mode)))
    answer = sync(app, sync_request(current_controller, ns, {"alice": owner}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"] == {MODE_LABEL: label}


def test_sync_removes_the_mode_label_from_a_namespace_it_no_longer_serves(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    ns = namespace("alice")
    ns["metadata"]["labels"][MODE_LABEL] = "token"
    answer = sync(client, sync_request(current_controller, ns, {}))
    assert answer.json() == {"attachments": [], "labels": {MODE_LABEL: None}}


def test_sync_with_a_bad_annotation_keeps_the_children(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    ns = annotated(namespace("alice"), "sidecar")
    answer = sync(client, sync_request(current_controller, ns, {"alice": profile("alice")}))
    assert answer.status_code == 422 and MODE_ANNOTATION in answer.json()["error"]


def test_sync_in_token_mode_with_the_legacy_controller_is_a_422(
    current_controller: dict[str, Any], legacy_controller: dict[str, Any]
) -> None:
    token_client = TestClient(create_app(Config(identity_mode="token")))
    answer = sync(
        token_client, sync_request(legacy_controller, namespace("alice"), {"alice": profile("alice")})
    )
    assert answer.status_code == 422
    answer = sync(
        token_client, sync_request(current_controller, namespace("alice"), {"alice": profile("alice")})
    )
    assert [a["kind"] for a in answer.json()["attachments"]] == ["AuthorizationPolicy"]


def test_an_ambient_namespace_without_a_profile_gets_no_notice(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    answer = sync(client, sync_request(current_controller, ambient_namespace(), {}))
    assert answer.json() == {"attachments": []}
    ns = ambient_namespace()
    ns["metadata"]["annotations"][NOTICE_ANNOTATION] = AMBIENT_HEADER_NOTICE
    answer = sync(client, sync_request(current_controller, ns, {}))
    assert answer.json() == {"attachments": [], "annotations": {NOTICE_ANNOTATION: None}}


def test_leaving_header_mode_keeps_the_header_rule_until_the_envoy_filter_is_gone(
    current_controller: dict[str, Any],
) -> None:
    token_client = TestClient(create_app(Config(identity_mode="token")))
    envoy_filter = desired("alice", profile("alice"), CURRENT_ISTIO, Config())[0]
    assert envoy_filter["kind"] == "EnvoyFilter"
    observed = {"EnvoyFilter.networking.istio.io/v1alpha3": {"alice/kubeflow-extension-userid": envoy_filter}}
    body = sync_request(current_controller, namespace("alice"), {"alice": profile("alice")}, observed)
    (policy,) = sync(token_client, body).json()["attachments"]
    assert policy["spec"]["rules"] == [HEADER_RULE, TOKEN_RULE]
    body = sync_request(current_controller, namespace("alice"), {"alice": profile("alice")})
    (policy,) = sync(token_client, body).json()["attachments"]
    assert policy["spec"]["rules"] == [TOKEN_RULE]
