"""The hooks' HTTP contract, with requests in Metacontroller's real shape."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from hooks.app import create_app
from service.config import Config
from tests.hooks.conftest import namespace, profile, sync_request


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Config()))


def post(client: TestClient, path: str, body: Any) -> httpx2.Response:
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def attachments_of(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    attachments: list[dict[str, Any]] = response.json()["attachments"]
    return attachments


def test_sync_returns_both_objects_for_a_profile_namespace(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    body = sync_request(current_controller, namespace("alice"), {"alice": profile("alice")})
    result = attachments_of(post(client, "/sync", body))
    assert {(a["kind"], a["metadata"]["namespace"]) for a in result} == {
        ("AuthorizationPolicy", "kubeflow"),
        ("EnvoyFilter", "alice"),
    }
    for attachment in result:
        assert attachment["apiVersion"] and attachment["metadata"]["name"]
        assert attachment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeflow-extension"
    assert "status" not in post(client, "/sync", body).json()


def test_sync_answers_in_the_types_the_legacy_controller_declares(
    client: TestClient, legacy_controller: dict[str, Any]
) -> None:
    body = sync_request(legacy_controller, namespace("alice"), {"alice": profile("alice")})
    kinds = {(a["apiVersion"], a["kind"]) for a in attachments_of(post(client, "/sync", body))}
    assert kinds == {
        ("rbac.istio.io/v1alpha1", "ServiceRoleBinding"),
        ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    }


@pytest.mark.parametrize("key", ["alice", "/alice"])
def test_profile_is_found_under_v1_and_v2_keys(
    client: TestClient, current_controller: dict[str, Any], key: str
) -> None:
    body = sync_request(current_controller, namespace("alice"), {key: profile("alice")})
    assert len(attachments_of(post(client, "/sync", body))) == 2


def test_v2_hook_version_request_is_served(client: TestClient, current_controller: dict[str, Any]) -> None:
    controller = copy.deepcopy(current_controller)
    controller["spec"]["hooks"]["sync"]["version"] = "v2"
    body = sync_request(controller, namespace("alice"), {"alice": profile("alice")})
    assert len(attachments_of(post(client, "/sync", body))) == 2


def test_missing_profile_or_owner_is_an_empty_desired_set(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    assert (
        attachments_of(post(client, "/sync", sync_request(current_controller, namespace("alice"), {}))) == []
    )
    other = {"bob": profile("bob")}
    assert (
        attachments_of(post(client, "/sync", sync_request(current_controller, namespace("alice"), other)))
        == []
    )
    no_owner = {"alice": profile("alice", owner=None)}
    assert (
        attachments_of(post(client, "/sync", sync_request(current_controller, namespace("alice"), no_owner)))
        == []
    )


def test_terminating_namespace_still_gets_its_desired_set(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    ns = namespace("alice", deletionTimestamp="2026-11-28T10:00:00Z")
    body = sync_request(current_controller, ns, {"alice": profile("alice")})
    assert len(attachments_of(post(client, "/sync", body))) == 2


def test_finalize_returns_nothing_and_reports_done_only_when_children_are_gone(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    observed = {
        "EnvoyFilter.networking.istio.io/v1alpha3": {
            "alice/kubeflow-extension-userid": {"kind": "EnvoyFilter"}
        }
    }
    body = sync_request(
        current_controller, namespace("alice"), {"alice": profile("alice")}, observed, finalizing=True
    )
    answer = post(client, "/finalize", body).json()
    assert answer == {"attachments": [], "finalized": False}
    body = sync_request(current_controller, namespace("alice"), {"alice": profile("alice")}, finalizing=True)
    assert post(client, "/finalize", body).json() == {"attachments": [], "finalized": True}


@pytest.mark.parametrize("name", ["a", "0", "a" * 63, "team-1-2-3", "x--y"])
def test_odd_but_legal_namespace_names(
    client: TestClient, current_controller: dict[str, Any], name: str
) -> None:
    body = sync_request(current_controller, namespace(name), {name: profile(name)})
    result = attachments_of(post(client, "/sync", body))
    assert {a["metadata"]["namespace"] for a in result} == {"kubeflow", name}
    assert len({a["metadata"]["name"] for a in result if a["metadata"]["namespace"] == "kubeflow"}) == 1


def test_answer_is_byte_identical_for_the_same_request_in_any_key_order(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    body = sync_request(current_controller, namespace("alice"), {"alice": profile("alice")})
    first = post(client, "/sync", body).content
    reordered = json.loads(json.dumps(body), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert post(client, "/sync", reordered).content == first
    assert post(client, "/sync", body).content == first


def test_customize_asks_for_the_profile(client: TestClient, current_controller: dict[str, Any]) -> None:
    answer = post(client, "/customize", {"controller": current_controller, "parent": namespace("team-x")})
    assert answer.status_code == 200
    assert answer.json() == {
        "relatedResources": [{"apiVersion": "kubeflow.org/v1", "resource": "profiles", "names": ["team-x"]}]
    }


def test_header_form_annotation_on_the_controller_is_honoured(
    client: TestClient, current_controller: dict[str, Any]
) -> None:
    controller = copy.deepcopy(current_controller)
    controller["metadata"]["annotations"] = {"kubeflow-extension.kubeflow.org/envoy-header-form": "append"}
    body = sync_request(controller, namespace("alice"), {"alice": profile("alice")})
    (filter_,) = [a for a in attachments_of(post(client, "/sync", body)) if a["kind"] == "EnvoyFilter"]
    header = filter_["spec"]["configPatches"][0]["patch"]["value"]["request_headers_to_add"][0]
    assert header["append"] is False


def _bad_requests(controller: dict[str, Any]) -> list[tuple[str, Any, int]]:
    good = sync_request(controller, namespace("alice"), {"alice": profile("alice")})
    no_object = {k: v for k, v in good.items() if k != "object"}
    wrong_kind = {**good, "object": {**good["object"], "kind": "ConfigMap"}}
    no_name = {**good, "object": {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}}
    unsupported = copy.deepcopy(good)
    unsupported["controller"]["spec"]["attachments"] = [{"apiVersion": "v1", "resource": "configmaps"}]
    no_related = {**good, "related": {}}
    odd_form = copy.deepcopy(good)
    odd_form["controller"]["metadata"]["annotations"] = {
        "kubeflow-extension.kubeflow.org/envoy-header-form": "both"
    }
    return [
        ("/sync", [], 400),
        ("/sync", "text", 400),
        ("/sync", no_object, 400),
        ("/sync", wrong_kind, 422),
        ("/sync", no_name, 400),
        ("/sync", unsupported, 422),
        ("/sync", no_related, 422),
        ("/sync", odd_form, 422),
        ("/sync", {**good, "finalizing": "yes"}, 400),
        ("/sync", {**good, "controller": None}, 400),
        ("/customize", {"controller": controller}, 400),
        ("/customize", {"parent": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}, 422),
    ]


def test_malformed_requests_get_a_json_4xx_and_never_an_empty_answer(
    client: TestClient, current_controller: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    for path, body, status in _bad_requests(current_controller):
        response = post(client, path, body)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["error"]
        assert "attachments" not in response.json()
    assert any(r.getMessage() == "rejected request" for r in caplog.records)


def test_transport_level_mistakes_are_json_4xx(client: TestClient) -> None:
    assert client.post("/sync", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/sync", content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    big = b"[" + b"0," * (2 * 1024 * 1024) + b"0]"
    response = client.post("/sync", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["status"] == 413
    response = client.get("/sync")
    assert response.status_code == 405 and response.json()["error"]
    assert client.get("/nope").json()["status"] == 404


def test_probes_and_metrics(client: TestClient, current_controller: dict[str, Any]) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    post(client, "/sync", sync_request(current_controller, namespace("alice"), {"alice": profile("alice")}))
    post(client, "/sync", [])
    text = client.get("/metrics").text
    assert 'kfext_hook_requests_total{hook="sync",outcome="ok"}' in text
    assert 'kfext_hook_requests_total{hook="sync",outcome="rejected"}' in text
    assert 'kfext_hook_request_duration_seconds_count{hook="sync"}' in text
