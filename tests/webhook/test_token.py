"""Token identity in the webhook: the projected token in every ordinary container, once, next to what a
PodDefault may already have added."""

import copy
import dataclasses
from typing import Any

import jsonpatch
import pytest

from service.config import Config
from tests.fuzz.checks import schema_errors
from tests.webhook.katib_objects import (
    KUBEFLOW_ENV,
    KUBEFLOW_MOUNT,
    KUBEFLOW_VOLUME,
    notebook_pod,
    trial_job,
    trial_pod,
)
from webhook.mutate import Result, mutations, run
from webhook.mutations.token import mutate_job, mutate_pod

TOKEN = Config(identity_mode="token")


def mutated(obj: dict[str, Any], kind: str = "Pod", config: Config = TOKEN) -> Result:
    result = run(obj, kind, config)
    assert not result.failed, result.failures
    assert jsonpatch.apply_patch(obj, result.ops) == result.obj
    assert run(result.obj, kind, config).ops == [], "a reinvocation changes nothing"
    return result


def with_pod_default(pod: dict[str, Any]) -> dict[str, Any]:
    """The Pod as Kubeflow's admission webhook leaves it after applying access-ml-pipeline."""
    pod = copy.deepcopy(pod)
    pod["spec"].setdefault("volumes", []).append(copy.deepcopy(KUBEFLOW_VOLUME))
    for container in pod["spec"]["containers"]:
        if container["name"] != "istio-proxy":
            container.setdefault("volumeMounts", []).append(dict(KUBEFLOW_MOUNT))
            container.setdefault("env", []).append(dict(KUBEFLOW_ENV))
    return pod


def test_notebook_gets_exactly_what_kubeflow_documents() -> None:
    result = mutated(notebook_pod())
    spec = result.obj["spec"]
    assert spec["volumes"] == [KUBEFLOW_VOLUME]
    (container,) = spec["containers"]
    assert container["volumeMounts"] == [KUBEFLOW_MOUNT]
    assert container["env"] == [KUBEFLOW_ENV]
    assert schema_errors("Pod", result.obj) == []


def test_every_ordinary_container_but_not_the_istio_proxy() -> None:
    pod = trial_pod(kale="0.7")
    result = mutated(pod)
    containers = {c["name"]: c for c in result.obj["spec"]["containers"]}
    assert set(containers) == {"main", "istio-proxy", "metrics-logger-and-collector"}
    for name in ("main", "metrics-logger-and-collector"):
        assert KUBEFLOW_MOUNT in containers[name]["volumeMounts"]
        assert KUBEFLOW_ENV in containers[name]["env"]
    assert containers["istio-proxy"] == next(
        c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy"
    )
    # The trial's own volume stays, the token volume is added once.
    assert [v["name"] for v in result.obj["spec"]["volumes"]] == [
        "metrics-volume",
        "volume-kf-pipeline-token",
    ]
    assert schema_errors("Pod", result.obj) == []


def test_header_mode_changes_nothing_new() -> None:
    for pod in (notebook_pod(), trial_pod(kale="0.7")):
        assert mutate_pod(pod, Config()).ops == ()
        assert "token" not in run(pod, "Pod", Config()).changed
    assert "token" not in {step.name for kind in ("Pod", "Job") for step in mutations(kind, Config())}
    assert mutate_job(trial_job(), Config()).ops == ()


def test_both_mode_mounts_too() -> None:
    result = mutated(notebook_pod(), config=Config(identity_mode="both"))
    assert result.obj["spec"]["volumes"] == [KUBEFLOW_VOLUME]


def test_a_pod_default_mount_is_kept_and_not_duplicated() -> None:
    pod = with_pod_default(notebook_pod())
    assert mutate_pod(pod, TOKEN).ops == ()
    assert mutate_pod(pod, TOKEN).warnings == ()


def test_an_equivalent_volume_under_another_name_at_the_same_path_is_enough() -> None:
    pod = with_pod_default(notebook_pod())
    pod["spec"]["volumes"][0]["name"] = "my-token"
    pod["spec"]["containers"][0]["volumeMounts"][0]["name"] = "my-token"
    assert mutate_pod(pod, TOKEN) == mutate_pod(with_pod_default(notebook_pod()), TOKEN)


def test_a_container_added_after_the_pod_default_still_gets_the_token() -> None:
    pod = with_pod_default(notebook_pod())
    pod["spec"]["containers"].append({"name": "helper", "image": "busybox"})
    result = mutated(pod)
    assert [v["name"] for v in result.obj["spec"]["volumes"]] == ["volume-kf-pipeline-token"]
    assert result.obj["spec"]["containers"][1]["volumeMounts"] == [KUBEFLOW_MOUNT]


def test_our_volume_name_with_another_audience_is_left_alone_with_a_warning() -> None:
    pod = with_pod_default(notebook_pod())
    pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] = "vault"
    result = mutate_pod(pod, TOKEN)
    assert result.ops == ()
    assert "no token mounted" in result.warnings[0]


def test_the_mount_path_taken_by_another_volume_is_left_alone_with_a_warning() -> None:
    pod = notebook_pod()
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/var/run/secrets/kubeflow/pipelines/"}
    ]
    pod["spec"]["containers"].append({"name": "helper", "image": "busybox"})
    result = mutated(pod)
    assert any("already mounted from another volume" in w for w in result.warnings)
    first, second = result.obj["spec"]["containers"]
    assert [m["name"] for m in first["volumeMounts"]] == ["data"] and "env" not in first
    assert second["volumeMounts"] == [KUBEFLOW_MOUNT]
    assert schema_errors("Pod", result.obj) == []


def test_a_user_chosen_token_path_is_kept() -> None:
    pod = notebook_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": "/elsewhere"}]
    result = mutated(pod)
    assert result.obj["spec"]["containers"][0]["env"] == pod["spec"]["containers"][0]["env"]
    assert result.obj["spec"]["containers"][0]["volumeMounts"] == [KUBEFLOW_MOUNT]
    assert any("keeps its own KF_PIPELINES_SA_TOKEN_PATH" in w for w in result.warnings)


def test_settings_shape_the_volume() -> None:
    config = dataclasses.replace(
        TOKEN,
        token_audience="example.org/pipelines",
        token_expiration_seconds=3600,
        token_directory="/run/kfp",
        token_file="sa",
        token_volume="kfp-token",
        token_path_env="KFP_TOKEN",
    )
    result = mutated(notebook_pod(), config=config)
    (volume,) = result.obj["spec"]["volumes"]
    assert volume == {
        "name": "kfp-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "sa",
                        "expirationSeconds": 3600,
                        "audience": "example.org/pipelines",
                    }
                }
            ]
        },
    }
    (container,) = result.obj["spec"]["containers"]
    assert container["volumeMounts"] == [{"name": "kfp-token", "mountPath": "/run/kfp", "readOnly": True}]
    assert container["env"] == [{"name": "KFP_TOKEN", "value": "/run/kfp/sa"}]


@pytest.mark.parametrize("api_version", ["kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"])
def test_trial_job_template_gets_the_token_and_keeps_default_editor(api_version: str) -> None:
    result = mutated(trial_job(api_version), kind="Job")
    template = result.obj["spec"]["template"]["spec"]
    assert template["serviceAccountName"] == "default-editor"
    assert template["volumes"] == [KUBEFLOW_VOLUME]
    assert template["containers"][0]["volumeMounts"] == [KUBEFLOW_MOUNT]
    assert template["containers"][0]["env"] == [KUBEFLOW_ENV]
    # The trial Pod created from it gets nothing more.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {}}, "spec": copy.deepcopy(template)}
    assert mutate_pod(pod, TOKEN).ops == ()


def test_other_pods_and_jobs_are_not_touched() -> None:
    assert mutate_pod({"kind": "Pod", "spec": {"containers": [{"name": "x"}]}}, TOKEN).ops == ()
    job = trial_job()
    job["metadata"]["ownerReferences"] = []
    assert mutate_job(job, TOKEN).ops == ()
