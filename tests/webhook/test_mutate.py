import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.config import Config
from tests.webhook.katib_objects import KATIB_VERSIONS, kale_command, notebook_pod, trial_job, trial_pod
from webhook import mutate as mutate_module
from webhook.mutate import Result, Step, mutate_object, run
from webhook.mutations import COLLECTOR_CONTAINERS
from webhook.patch import Mutation, Op, ShapeError, apply

CONFIG = Config()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)

realistic = st.one_of(
    st.builds(
        trial_pod,
        version=st.sampled_from(KATIB_VERSIONS),
        proxy=st.sampled_from(["classic", "native", None]),
        kale=st.sampled_from([None, "0.6", "0.7"]),
        tfevent=st.booleans(),
    ),
    st.builds(
        trial_job,
        api_version=st.sampled_from(["kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"]),
        kale=st.sampled_from([None, "0.6", "0.7"]),
    ),
    st.builds(
        notebook_pod,
        labels=st.dictionaries(
            st.sampled_from(["kubeflow-extension", "a/b", "x~y"]), st.sampled_from(["true", "false", ""])
        ),
    ),
)

# A path into an object and the value to put there (None: remove it).
Change = tuple[tuple[str | int, ...], Any]

# Places where an API server would accept odd but valid values, and what to put there.
perturbations: st.SearchStrategy[list[Change]] = st.lists(
    st.tuples(
        st.sampled_from(
            [
                ("metadata", "labels"),
                ("metadata", "annotations"),
                ("metadata", "labels", "sidecar.istio.io/inject"),
                ("metadata", "annotations", "sidecar.istio.io/inject"),
                ("metadata", "labels", "notebook-name"),
                ("spec", "template", "metadata"),
                ("spec", "template", "metadata", "labels"),
                ("spec", "template", "spec", "serviceAccount"),
                ("spec", "containers", -1, "args"),
                ("spec", "containers", -1, "image"),
                ("spec", "containers", -1, "command"),
                ("spec", "initContainers"),
            ]
        ),
        st.one_of(
            st.none(),
            st.sampled_from(["true", "false", "x", "docker.io/kubeflowkatib/file-metrics-collector"]),
            st.lists(st.sampled_from(["-w", "true", "-w=1", "--w", "-t", "a;b", "$(X)", "--"]), max_size=6),
            st.just({}),
        ),
    ),
    max_size=3,
)


def perturb(obj: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    for path, value in changes:
        target: Any = obj
        for token in path[:-1]:
            if isinstance(target, dict) and isinstance(token, str):
                target = (
                    target.setdefault(token, {}) if not isinstance(target.get(token), list) else target[token]
                )
            elif isinstance(target, list) and target and isinstance(token, int):
                target = target[token]
            else:
                break
        else:
            if isinstance(target, dict):
                if value is None:
                    target.pop(path[-1], None)
                else:
                    target[path[-1]] = copy.deepcopy(value)  # st.just({}) is one shared dict
    return obj


def check(obj: dict[str, Any], config: Config = CONFIG) -> Result:
    sent_kind = obj.get("kind")
    kind = sent_kind if isinstance(sent_kind, str) else ""
    original = copy.deepcopy(obj)
    result = run(obj, kind, config)
    assert obj == original, "the request object is never modified"
    assert not result.failed, result.failures
    # The patch applies, in order, to the object exactly as sent, and gives the mutated object.
    assert jsonpatch.apply_patch(obj, result.ops) == result.obj
    # Idempotent: the webhook's own output yields no patch (reinvocationPolicy: IfNeeded).
    again = run(result.obj, kind, config)
    assert again.ops == [], again.ops
    return result


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(realistic, perturbations)
def test_realistic_objects_patch_cleanly_and_idempotently(obj: dict[str, Any], changes: list[Change]) -> None:
    check(perturb(obj, changes))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(realistic, perturbations, st.sampled_from(["token", "both"]))
def test_token_identity_patches_cleanly_and_idempotently(
    obj: dict[str, Any], changes: list[Change], mode: str
) -> None:
    check(perturb(obj, changes), Config(identity_mode=mode))


def fully_chained(obj: dict[str, Any], kind: str, config: Config) -> list[Op]:
    """The reference for ``run``: every mutation's operations applied before the next one runs."""
    current, ops = obj, list[Op]()
    for step in mutate_module.mutations(kind, config):
        try:
            mutation = step.function(current, config)
        except ShapeError:
            continue
        current = apply(current, mutation.ops)
        ops.extend(mutation.ops)
    return ops


def plant_kale(obj: dict[str, Any], where: list[tuple[int, str]]) -> dict[str, Any]:
    """``obj`` with Kale's command put into some containers' command or args, Katib's collectors too."""
    obj = copy.deepcopy(obj)
    containers = obj.get("spec", {}).get("containers") or []
    for index, field in where:
        if containers:
            containers[index % len(containers)][field] = ["sh", "-c", kale_command("0.7")]
    return obj


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    realistic,
    perturbations,
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["command", "args"])), max_size=2),
    st.sampled_from(["header", "token"]),
)
def test_mutations_declared_independent_give_the_fully_chained_patch(
    obj: dict[str, Any], changes: list[Change], where: list[tuple[int, str]], mode: str
) -> None:
    obj = plant_kale(perturb(obj, changes), where)
    config = Config(identity_mode=mode)
    kind = str(obj.get("kind"))
    assert run(obj, kind, config).ops == fully_chained(obj, kind, config)


def test_kale_leaves_katib_collector_and_istio_proxy_containers_alone() -> None:
    pod = trial_pod(kale="0.7")
    for container in pod["spec"]["containers"]:
        if container["name"] in (*COLLECTOR_CONTAINERS, "istio-proxy"):
            container["args"] = [*container["args"], kale_command("0.7")]
    result = check(pod)
    assert result.changed == ["collector", "kale"]
    patched = {op["path"].split("/")[3] for op in result.ops if "kfputils" in str(op.get("value"))}
    assert [pod["spec"]["containers"][int(index)]["name"] for index in patched] == ["main"]


@pytest.mark.parametrize("name", [["main"], {"a": 1}, None, 3])
def test_a_container_name_of_any_json_type_is_no_error(name: Any) -> None:
    pod = trial_pod(kale="0.7")
    pod["spec"]["containers"][0]["name"] = name
    result = run(pod, "Pod", CONFIG)
    assert not result.failed, result.failures


@settings(max_examples=300)
@given(
    st.sampled_from(["Pod", "Job"]), st.dictionaries(st.sampled_from(["metadata", "spec", "x"]), json_values)
)
def test_arbitrary_objects_never_raise(kind: str, body: dict[str, Any]) -> None:
    check({"kind": kind, **body})


def test_pod_mutations_chain_into_one_patch() -> None:
    pod = trial_pod(kale="0.7")
    pod["metadata"]["labels"]["notebook-name"] = "nb"  # unlikely, but every mutation applies at once
    result = check(pod)
    assert result.changed == ["notebook", "collector", "kale"]
    assert result.failures == []


def test_other_kinds_pass_unchanged() -> None:
    result = run({"kind": "Deployment", "metadata": {"labels": {"notebook-name": "x"}}}, "Deployment", CONFIG)
    assert result.ops == []
    assert result.changed == []
    assert result.failures == []


def test_malformed_object_is_warned_about_not_failed() -> None:
    job = trial_job()
    job["spec"]["template"]["metadata"] = "oops"
    result = run(job, "Job", CONFIG)
    assert result.ops == []
    assert [(f.mutation, f.status) for f in result.failures] == [("trial_job", "malformed")]
    assert "malformed" in result.warnings[0]


def test_a_failing_mutation_leaves_the_whole_object_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(obj: Mapping[str, Any], config: Config) -> Mutation:
        raise RuntimeError("bug")

    def notebook_like(obj: Mapping[str, Any], config: Config) -> Mutation:
        return Mutation(({"op": "add", "path": "/metadata/labels/x", "value": "1"},))

    monkeypatch.setitem(
        mutate_module.MUTATIONS, "Pod", (Step("first", notebook_like), Step("broken", broken))
    )
    pod = notebook_pod()
    result = run(pod, "Pod", CONFIG)
    assert result.ops == []
    assert result.obj == pod
    assert result.failed
    assert result.changed == []  # "first" patched, but its operations are not sent either
    assert "broken" in result.warnings[-1]
    assert [(f.mutation, f.status) for f in result.failures] == [("broken", "error")]
    assert isinstance(result.failures[0].error, RuntimeError)


def test_operations_that_do_not_fit_are_blamed_on_their_mutation(monkeypatch: pytest.MonkeyPatch) -> None:
    def misfit(obj: Mapping[str, Any], config: Config) -> Mutation:
        return Mutation(({"op": "replace", "path": "/metadata/no-such-key", "value": "1"},))

    def later(obj: Mapping[str, Any], config: Config) -> Mutation:
        return Mutation(({"op": "add", "path": "/metadata/labels/x", "value": "1"},))

    monkeypatch.setitem(mutate_module.MUTATIONS, "Pod", (Step("misfit", misfit), Step("later", later)))
    result = run(notebook_pod(), "Pod", CONFIG)
    assert result.ops == []
    assert result.failed
    assert result.warnings == ["misfit: internal error, object admitted unchanged"]
    assert [(f.mutation, f.status) for f in result.failures] == [("misfit", "error")]


@pytest.mark.parametrize("obj", [trial_pod(), trial_job(), notebook_pod(), {"kind": "ConfigMap"}, {}])
def test_mutate_object_returns_object_patch_and_warnings(obj: dict[str, Any]) -> None:
    mutated, patch, warnings = mutate_object(obj, CONFIG)
    assert jsonpatch.apply_patch(obj, patch) == mutated
    assert isinstance(warnings, list)
    assert bool(patch) == (obj.get("kind") in ("Pod", "Job"))
