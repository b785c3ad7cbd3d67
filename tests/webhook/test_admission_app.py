import base64
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx2
import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from service.config import Config
from tests.webhook.katib_objects import notebook_pod, review, trial_job, trial_pod
from webhook import mutate as mutate_module
from webhook.app import create_app
from webhook.patch import Mutation

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Config()), raise_server_exceptions=False) as test_client:
        yield test_client


def post(client: TestClient, body: Any, **kwargs: Any) -> httpx2.Response:
    return client.post(
        "/mutate", content=json.dumps(body), headers={"content-type": "application/json"}, **kwargs
    )


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["response"]["patch"]))
    return ops


def metric(client: TestClient, outcome: str) -> float:
    text = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kfext_webhook_requests_total{") and f'outcome="{outcome}"' in line
    )


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
@pytest.mark.parametrize(
    "obj", [trial_job(), trial_pod(kale="0.6"), notebook_pod()], ids=["job", "pod", "notebook"]
)
def test_mutate_answers_in_kind_with_a_patch_that_applies(
    client: TestClient, api_version: str, obj: dict[str, Any]
) -> None:
    response = post(client, review(obj, api_version))
    assert response.status_code == 200
    answer = response.json()
    assert answer["apiVersion"] == api_version
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert answer["response"]["allowed"] is True
    assert answer["response"]["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(obj, decoded_patch(answer))
    assert patched != obj
    # Sent again (reinvocation), the mutated object gets no patch.
    again = post(client, review(patched, api_version)).json()
    assert "patch" not in again["response"]


def test_dry_run_is_answered_the_same(client: TestClient) -> None:
    wet = post(client, review(trial_job())).json()
    dry = post(client, review(trial_job(), dryRun=True)).json()
    assert dry == wet


@pytest.mark.parametrize(
    "body",
    [
        review({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": {"notebook-name": "x"}}}),
        review(notebook_pod(), operation="UPDATE"),
        review(None, operation="DELETE"),
        review(trial_pod(), subResource="status", operation="CONNECT"),
    ],
)
def test_other_kinds_and_operations_pass_unchanged(client: TestClient, body: dict[str, Any]) -> None:
    response = post(client, body)
    assert response.status_code == 200
    assert response.json()["response"] == {"uid": body["request"]["uid"], "allowed": True}


def test_warnings_are_returned(client: TestClient) -> None:
    pod = trial_pod()
    pod["spec"]["containers"][-1]["image"] = "example.com/mirror/collector:1"
    answer = post(client, review(pod)).json()["response"]
    assert "patch" in answer  # -w=false still applies
    assert any("collector_entrypoints" in w for w in answer["warnings"])


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"[]", {"content-type": "application/json"}, 400),
        (json.dumps(review(notebook_pod())).encode(), {"content-type": "text/plain"}, 415),
        (json.dumps(review(notebook_pod())).encode(), {}, 415),
        (b"{" + b" " * (3 * 1024 * 1024) + b"}", {"content-type": "application/json"}, 413),
        (json.dumps(review(None)).encode(), {"content-type": "application/json"}, 400),
        (json.dumps(review(notebook_pod(), uid=None)).encode(), {"content-type": "application/json"}, 400),
    ],
)
def test_bad_input_is_a_4xx_with_a_json_error_and_a_log_line(
    client: TestClient, caplog: pytest.LogCaptureFixture, content: bytes, headers: dict[str, str], status: int
) -> None:
    with caplog.at_level(logging.WARNING):
        response = client.post("/mutate", content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["status"] == status
    assert response.json()["error"]
    assert any(record.message == "rejected request" for record in caplog.records)
    assert metric(client, "rejected") == 1


def test_a_failing_mutation_is_logged_counted_and_admitted_unchanged(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(obj: Mapping[str, Any], config: Config) -> Mutation:
        raise KeyError("surprise")

    monkeypatch.setitem(mutate_module.MUTATIONS, "Job", (mutate_module.Step("trial_job", broken),))
    with caplog.at_level(logging.ERROR):
        response = post(client, review(trial_job()))
    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["allowed"] is True
    assert "patch" not in answer
    assert answer["warnings"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError
    assert vars(record)["mutation"] == "trial_job"  # a field the log call adds with ``extra``
    assert metric(client, "error") == 1


def test_metrics_count_reviews_by_kind_mutation_and_outcome(client: TestClient) -> None:
    post(client, review(trial_job()))
    post(client, review(trial_pod(kale="0.7")))
    post(client, review(notebook_pod({"kubeflow-extension": "true"})))
    text = client.get("/metrics").text
    assert 'kfext_webhook_requests_total{kind="Job",mutation="trial_job",outcome="patched"} 1.0' in text
    assert 'kfext_webhook_requests_total{kind="Pod",mutation="collector+kale",outcome="patched"} 1.0' in text
    assert 'kfext_webhook_requests_total{kind="Pod",mutation="none",outcome="unchanged"} 1.0' in text
    assert 'kfext_webhook_request_duration_seconds_count{kind="Pod"} 2.0' in text


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/mutate").status_code == 405


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(JSON)
def test_no_5xx_for_arbitrary_json(client: TestClient, body: Any) -> None:
    assert post(client, body).status_code < 500


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    st.sampled_from(["Pod", "Job", "Other"]),
    st.dictionaries(st.sampled_from(["metadata", "spec", "kind"]), JSON),
)
def test_arbitrary_objects_in_a_valid_review_are_admitted(
    client: TestClient, kind: str, obj: dict[str, Any]
) -> None:
    body = review({"kind": kind})
    body["request"]["object"] = {
        "kind": kind,
        **obj,
    }  # the object's own kind may disagree: request.kind rules
    response = post(client, body)
    assert response.status_code == 200
    assert response.json()["response"]["allowed"] is True


def test_a_patched_review_leaves_one_json_audit_line_with_what_changed_and_why(client: TestClient) -> None:
    import io

    from service.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("webhook.app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        post(client, review(trial_job(), dryRun=True))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert set(entry) == {
        "time", "level", "logger", "message", "kind", "namespace", "object", "uid",
        "mutations", "operations", "warnings", "dry_run",
    }  # fmt: skip
    assert entry["level"] == "info"
    assert entry["message"] == "admitted"
    assert entry["kind"] == "Job"
    assert entry["namespace"] == "kubeflow-user-example-com"
    assert entry["uid"] == review(trial_job())["request"]["uid"]
    assert entry["mutations"] == "trial_job"
    assert entry["operations"] == len(decoded_patch(post(client, review(trial_job())).json()))
    assert entry["warnings"] == []
    assert entry["dry_run"] is True


@pytest.mark.parametrize("configured", ["header", "token", "both"])
@pytest.mark.parametrize(
    "obj", [trial_job(), trial_pod(kale="0.7"), notebook_pod()], ids=["job", "pod", "notebook"]
)
def test_the_path_not_the_configuration_says_whether_a_token_is_mounted(
    configured: str, obj: dict[str, Any]
) -> None:
    """The MutatingWebhookConfiguration routes by the namespace's label; the webhook's own setting is
    not consulted, so it cannot disagree with the hooks."""
    with TestClient(create_app(Config(identity_mode=configured))) as test_client:
        answers = {
            path: test_client.post(
                path, content=json.dumps(review(obj)), headers={"content-type": "application/json"}
            )
            for path in ("/mutate", "/mutate/token")
        }
    volumes = {
        path: json.dumps(decoded_patch(answer.json())).count("volume-kf-pipeline-token")
        for path, answer in answers.items()
    }
    assert volumes["/mutate"] == 0 and volumes["/mutate/token"] > 0, volumes
