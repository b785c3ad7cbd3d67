"""The local cluster's pure parts: what the load counts, what kube-apiserver's metrics say, how the Pod
network keeps its traffic on the machine."""

from __future__ import annotations

import json

from e2e.cluster import apiserver_metrics, load, network
from e2e.cluster.node import PodNetwork


def _sample(metric: str, value: int, **labels: str) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" + f" {value}"


_REJECTIONS = "apiserver_admission_webhook_rejection_count"
_OURS = ".kubeflow-extension.kubeflow.org"
EXPOSITION = "\n".join(
    [
        f"# TYPE {_REJECTIONS} counter",
        _sample(_REJECTIONS, 3, error_type="calling_webhook_error", name="trial-pods" + _OURS, type="admit"),
        _sample(_REJECTIONS, 2, error_type="calling_webhook_error", name="trial-jobs" + _OURS, type="admit"),
        _sample(_REJECTIONS, 7, error_type="no_error", name="trial-pods" + _OURS, rejection_code="400"),
        _sample(_REJECTIONS, 11, error_type="calling_webhook_error", name="other.example.com"),
        "# TYPE apiserver_admission_webhook_fail_open_count counter",
        _sample("apiserver_admission_webhook_fail_open_count", 4, name="notebook-pods" + _OURS, type="admit"),
        "",
    ]
)


def test_webhook_failures_count_only_our_calling_errors_and_fail_opens() -> None:
    assert apiserver_metrics.webhook_failures(EXPOSITION) == {"calling_webhook_error": 5.0, "fail_open": 4.0}
    assert apiserver_metrics.webhook_failures("") == {"calling_webhook_error": 0.0, "fail_open": 0.0}


def test_increase_is_per_counter() -> None:
    before = {"calling_webhook_error": 5.0, "fail_open": 1.0}
    assert apiserver_metrics.increase(before, {"calling_webhook_error": 5.0, "fail_open": 3.0}) == {
        "calling_webhook_error": 0.0,
        "fail_open": 2.0,
    }


def test_a_webhook_call_failure_is_a_refusal_and_other_errors_are_failures() -> None:
    pod = load.trial_pod("trial-1")
    refused = {
        "kind": "Status",
        "message": 'Internal error occurred: failed calling webhook "trial-pods": EOF',
    }
    assert load.classify(500, json.dumps(refused).encode(), pod)[0] == "refused"
    conflict = {"kind": "Status", "message": 'pods "trial-1" already exists'}
    assert load.classify(409, json.dumps(conflict).encode(), pod) == (
        "failed",
        '409: pods "trial-1" already exists',
    )
    assert load.classify(502, b"<html>", pod)[0] == "failed"


def test_stored_objects_are_mutated_only_with_our_change() -> None:
    pod = load.trial_pod("trial-1")
    assert load.classify(201, json.dumps(pod).encode(), pod)[0] == "unmutated"
    changed = json.loads(json.dumps(pod))
    [collector] = [c for c in changed["spec"]["containers"] if c["name"] == "metrics-logger-and-collector"]
    collector["args"] = ["-w=false", *collector["args"]]
    assert load.classify(201, json.dumps(changed).encode(), pod)[0] == "mutated"

    notebook = load.notebook_pod("notebook-2")
    assert not load.was_mutated(notebook, notebook)
    labelled = json.loads(json.dumps(notebook))
    labelled["metadata"]["labels"]["kubeflow-extension"] = "true"
    assert load.was_mutated(notebook, labelled)

    job = load.trial_job("trial-3", {"metadata": {"name": "load", "uid": "u-1"}})
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1" and job["spec"]["suspend"] is True
    assert not load.was_mutated(job, job)
    template = json.loads(json.dumps(job))
    template["spec"]["template"]["metadata"]["labels"]["kubeflow-extension"] = "true"
    assert load.was_mutated(job, template)


def test_load_objects_are_held_off_the_node_and_owned_by_nothing_missing() -> None:
    for pod in (load.trial_pod("trial-1"), load.notebook_pod("notebook-2")):
        assert pod["spec"]["schedulingGates"] == [load.SCHEDULING_GATE]
        assert "ownerReferences" not in pod["metadata"]
    for obj in (
        load.trial_pod("trial-1"),
        load.notebook_pod("notebook-2"),
        load.trial_job("trial-3", {"metadata": {"name": "t", "uid": "u"}}),
    ):
        assert "namespace" not in obj["metadata"], "the request's path names the namespace"


def test_the_pod_network_keeps_service_addresses_and_pod_traffic_on_the_machine() -> None:
    pods = PodNetwork(pod_cidr="10.244.0.0/24", bridge="kfextpods0")
    commands = network.setup_commands(pods)
    assert network.gateway(pods) == "10.244.0.1"
    assert ["ip", "route", "add", network.SERVICE_CIDR, "dev", "kfextpods0", "src", "10.244.0.1"] in commands
    [guard] = [c for c in commands if c[0] == "iptables"]
    assert guard[guard.index("-s") + 1] == "10.244.0.0/24"
    assert guard[guard.index("!") + 1 : guard.index("!") + 3] == ["-o", "kfextpods0"]
    assert guard[-2:] == ["-j", "DROP"]
    # The bridge exists (with the gateway's address) before the route that names it.
    names = [" ".join(c[:3]) for c in commands]
    assert names.index("ip link add") < names.index("ip route add")
