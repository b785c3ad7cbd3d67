import dataclasses

import jsonpatch

from service.config import Config
from tests.webhook.katib_objects import notebook_pod, trial_pod
from webhook.mutations.notebook import mutate

CONFIG = Config()


def test_notebook_pod_gets_the_workload_label() -> None:
    pod = notebook_pod()
    result = mutate(pod, CONFIG)
    patched = jsonpatch.apply_patch(pod, list(result.ops))
    assert patched["metadata"]["labels"]["kubeflow-extension"] == "true"
    assert {k: v for k, v in patched["metadata"]["labels"].items() if k != "kubeflow-extension"} == pod[
        "metadata"
    ]["labels"]
    assert result.warnings == ()


def test_the_label_name_comes_from_the_configuration() -> None:
    pod = notebook_pod()
    config = dataclasses.replace(CONFIG, workload_label="example.com/ml-pipeline-access")
    patched = jsonpatch.apply_patch(pod, list(mutate(pod, config).ops))
    assert patched["metadata"]["labels"]["example.com/ml-pipeline-access"] == "true"


def test_a_wrong_value_is_replaced_and_an_already_labelled_pod_is_unchanged() -> None:
    assert mutate(notebook_pod({"kubeflow-extension": "true"}), CONFIG).ops == ()
    ops = mutate(notebook_pod({"kubeflow-extension": "false"}), CONFIG).ops
    assert [op["op"] for op in ops] == ["replace"]


def test_other_pods_are_not_touched() -> None:
    assert mutate(trial_pod(), CONFIG).ops == ()
    assert mutate({"kind": "Pod", "metadata": {}}, CONFIG).ops == ()
    assert mutate({"kind": "Pod"}, CONFIG).ops == ()
