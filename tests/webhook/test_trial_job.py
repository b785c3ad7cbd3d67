import dataclasses
from typing import Any

import jsonpatch
import pytest

from service.config import Config
from tests.webhook.katib_objects import trial_job
from webhook.mutations.trial_job import is_trial_job, mutate
from webhook.patch import Mutation

CONFIG = Config()
INJECT = "sidecar.istio.io/inject"


def patched(job: dict[str, Any], config: Config = CONFIG) -> tuple[dict[str, Any], Mutation]:
    result = mutate(job, config)
    return jsonpatch.apply_patch(job, list(result.ops)), result


@pytest.mark.parametrize("api_version", ["kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"])
@pytest.mark.parametrize("kale", ["0.6", "0.7", None])
def test_trial_job_template_gets_sidecar_label_account(api_version: str, kale: str | None) -> None:
    job = trial_job(api_version, kale)
    after, result = patched(job)
    template = after["spec"]["template"]
    assert template["metadata"]["labels"][INJECT] == "true"
    assert template["metadata"]["annotations"][INJECT] == "true"  # Kale's "false" is overridden
    assert template["metadata"]["labels"]["kubeflow-extension"] == "true"
    assert template["spec"]["serviceAccountName"] == "default-editor"
    assert "serviceAccount" not in template["spec"]
    # Nothing else changes: containers, Kale's own label, the Job's metadata.
    assert template["spec"]["containers"] == job["spec"]["template"]["spec"]["containers"]
    assert after["metadata"] == job["metadata"]
    if kale:
        assert template["metadata"]["labels"]["access-ml-pipeline"] == "true"
    assert result.warnings == ()
    assert mutate(after, CONFIG).ops == ()


def test_escaped_pointer_for_the_annotation_key() -> None:
    paths = {op["path"] for op in mutate(trial_job(), CONFIG).ops}
    assert "/spec/template/metadata/annotations/sidecar.istio.io~1inject" in paths
    assert not any("~01" in path for path in paths)


def test_deprecated_service_account_is_kept_consistent() -> None:
    job = trial_job()
    job["spec"]["template"]["spec"]["serviceAccount"] = "pipeline-runner"
    after, _ = patched(job, dataclasses.replace(CONFIG, service_account="ml-runner"))
    spec = after["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "ml-runner"


def test_template_without_metadata_gets_it_in_one_operation() -> None:
    job = trial_job(kale=None)
    del job["spec"]["template"]["metadata"]
    after, result = patched(job)
    assert [op["path"] for op in result.ops].count("/spec/template/metadata") == 1
    assert after["spec"]["template"]["metadata"]["annotations"] == {INJECT: "true"}


@pytest.mark.parametrize(
    "owner",
    [
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": "t", "controller": False},
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": "t"},
        {"apiVersion": "example.com/v1", "kind": "Trial", "name": "t", "controller": True},
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "t", "controller": True},
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": "t", "controller": True},
    ],
)
def test_jobs_not_controlled_by_a_trial_are_not_touched(owner: dict[str, Any]) -> None:
    job = trial_job()
    job["metadata"]["ownerReferences"] = [owner]
    assert not is_trial_job(job)
    assert mutate(job, CONFIG).ops == ()


def test_job_without_owner_or_template() -> None:
    job = trial_job()
    del job["metadata"]["ownerReferences"]
    assert mutate(job, CONFIG).ops == ()
    job = trial_job()
    del job["spec"]["template"]
    result = mutate(job, CONFIG)
    assert result.ops == ()
    assert result.warnings
