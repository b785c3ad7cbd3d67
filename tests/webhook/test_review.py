import base64
import json
from typing import Any

import jsonpatch
import pytest

from service.http import ClientError
from tests.webhook.katib_objects import notebook_pod, review
from webhook.patch import Op
from webhook.review import answer, parse


def test_parse_reads_what_the_webhook_needs() -> None:
    parsed = parse(review(notebook_pod(), dryRun=True))
    assert parsed.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert parsed.kind == "Pod"
    assert parsed.operation == "CREATE"
    assert parsed.namespace == "kubeflow-user-example-com"
    assert parsed.dry_run is True
    assert parsed.name == "my-notebook-0"
    assert parsed.obj == notebook_pod()


def test_name_falls_back_to_generate_name() -> None:
    pod = notebook_pod()
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "nb-"
    assert parse(review(pod)).name == "nb-"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "JSON object"),
        ({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {}}, "AdmissionReview"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {}}, "AdmissionReview"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "`request`"),
        (review(notebook_pod(), uid=""), "uid"),
        (review(notebook_pod(), uid=7), "uid"),
        (review(notebook_pod(), kind="Pod"), "kind"),
        (review(notebook_pod(), operation=1), "operation"),
        (review(None), "object"),
        (review(notebook_pod(), object=[1]), "object"),
    ],
)
def test_parse_rejects_what_no_api_server_sends(body: Any, fragment: str) -> None:
    with pytest.raises(ClientError) as raised:
        parse(body)
    assert raised.value.status == 400
    assert fragment in raised.value.message


def test_parse_accepts_no_object_for_delete() -> None:
    assert parse(review(None, operation="DELETE")).obj is None


def test_answer_without_changes_has_no_patch() -> None:
    response = answer(parse(review(notebook_pod())), [])
    assert response == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True},
    }


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_answer_is_in_kind_with_a_base64_json_patch_and_warnings(api_version: str) -> None:
    pod = notebook_pod()
    parsed = parse(review(pod, api_version=api_version))
    ops: list[Op] = [{"op": "add", "path": "/metadata/labels/sidecar.istio.io~1inject", "value": "true"}]
    response = answer(parsed, ops, ["careful"])
    assert response["apiVersion"] == api_version
    assert response["response"]["patchType"] == "JSONPatch"
    assert response["response"]["warnings"] == ["careful"]
    patch = json.loads(base64.b64decode(response["response"]["patch"]))
    assert jsonpatch.apply_patch(pod, patch)["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
