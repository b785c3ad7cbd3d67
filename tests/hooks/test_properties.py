"""Properties over generated requests: determinism, the shape of every answer, and no 5xx for anything."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hooks.app import create_app
from service.config import Config
from tests.hooks.conftest import PROFILE_KEY, namespace, profile, shipped_controller

CLIENT = TestClient(create_app(Config()), raise_server_exceptions=False)
CONTROLLERS = [shipped_controller(), shipped_controller("legacy-istio")]

dns_labels = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
owners = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def post(body: bytes) -> Any:
    return CLIENT.post("/sync", content=body, headers={"content-type": "application/json"})


@st.composite
def sync_requests(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(dns_labels)
    controller = draw(st.sampled_from(CONTROLLERS))
    related_key = draw(st.sampled_from([name, "/" + name]))
    profiles = draw(st.sampled_from([{}, {related_key: profile(name, owner=draw(owners))}]))
    return {
        "controller": controller,
        "object": namespace(name),
        "attachments": {},
        "related": {PROFILE_KEY: profiles},
        "finalizing": False,
    }


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(sync_requests())
def test_valid_requests_get_a_deterministic_complete_answer(request: dict[str, Any]) -> None:
    first = post(json.dumps(request).encode())
    assert first.status_code == 200
    assert post(json.dumps(request, sort_keys=True).encode()).content == first.content
    name = request["object"]["metadata"]["name"]
    for attachment in first.json()["attachments"]:
        assert attachment["metadata"]["namespace"] in ("kubeflow", name)
        assert attachment["apiVersion"] and attachment["kind"] and attachment["metadata"]["name"]


@settings(max_examples=500)
@given(json_values)
def test_arbitrary_json_never_gets_a_5xx_nor_an_empty_200(value: Any) -> None:
    response = post(json.dumps(value).encode())
    assert response.status_code < 500
    if response.status_code == 200:
        raise AssertionError(f"unexpected 200 for {value!r}")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(sync_requests(), st.sampled_from(["object", "controller", "related", "attachments"]), json_values)
def test_a_valid_request_with_one_part_replaced_never_gets_a_5xx(
    request: dict[str, Any], part: str, value: Any
) -> None:
    request = {**request, part: value}
    response = post(json.dumps(request).encode())
    assert response.status_code < 500
    if response.status_code == 200:
        assert isinstance(response.json()["attachments"], list)


@settings(max_examples=200)
@given(st.binary(max_size=200) | st.text(alphabet=string.printable, max_size=200).map(str.encode))
def test_arbitrary_bytes_never_get_a_5xx(body: bytes) -> None:
    assert post(body).status_code < 500
