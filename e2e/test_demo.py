"""The demo's pure parts: the sent-versus-stored diff, its one-line rendering, and the children's facts.
No control plane needed."""

from __future__ import annotations

import copy
from typing import Any

from e2e.demo import (
    JOB_CONTROLLER_FIELDS,
    MISSING,
    Change,
    Checks,
    admission_diff,
    check_children,
    check_token,
    children_lines,
    describe,
    diff,
    facts,
    key_path,
    summarize,
)
from hooks.desired import CURRENT_ISTIO, desired
from service.config import Config
from tests.webhook import katib_objects
from webhook.mutate import mutate_object
from webhook.mutations import collector, kale

CONFIG = Config()
ACCESS = "kube-api-access-x2b7q"


def as_stored(sent: dict[str, Any]) -> dict[str, Any]:
    """What kube-apiserver 1.37 stores for ``sent`` without any webhook: its defaults and built-in
    admission, in the shapes a real server returned them."""
    obj = copy.deepcopy(sent)
    metadata = obj["metadata"]
    metadata |= {"uid": "0b1e", "resourceVersion": "312", "creationTimestamp": "2026-01-01T00:00:00Z"}
    metadata["generation"] = 1
    if obj["kind"] == "Job":
        uid = {"batch.kubernetes.io/controller-uid": "0b1e", "controller-uid": "0b1e"}
        names = {"batch.kubernetes.io/job-name": metadata["name"], "job-name": metadata["name"]}
        template = obj["spec"]["template"]
        template.setdefault("metadata", {}).setdefault("labels", {}).update(uid | names)
        metadata.setdefault("labels", dict(template["metadata"]["labels"]))
        obj["spec"] |= {
            "completionMode": "NonIndexed",
            "completions": 1,
            "manualSelector": False,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "0b1e"}},
            "suspend": False,
        }
        pod_spec = template["spec"]
        obj["status"] = {"active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}
    else:
        pod_spec = obj["spec"]
        pod_spec.setdefault("serviceAccountName", "default")
        pod_spec.setdefault("restartPolicy", "Always")
        pod_spec |= {
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "tolerations": [
                {"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}
                for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
            ],
        }
        pod_spec.setdefault("volumes", []).append(
            {"name": ACCESS, "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {}}]}}
        )
        for container in pod_spec["containers"]:
            container.setdefault("volumeMounts", []).append(
                {
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "name": ACCESS,
                    "readOnly": True,
                }
            )
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    if "serviceAccountName" in pod_spec:
        pod_spec["serviceAccount"] = pod_spec["serviceAccountName"]
    pod_spec |= {
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    }
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container.setdefault("resources", {})
        container |= {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    return obj


def admitted(sent: dict[str, Any]) -> dict[str, Any]:
    """Stored after the webhook: Kubernetes defaults first, then the webhook's mutation."""
    return mutate_object(as_stored(sent), CONFIG).obj


def paths(changes: list[Change]) -> list[str]:
    return [change.path for change in changes]


def test_key_path_quotes_keys_that_are_not_plain_names() -> None:
    assert key_path("", "metadata") == "metadata"
    assert key_path("metadata.labels", "kubeflow-extension") == "metadata.labels.kubeflow-extension"
    assert (
        key_path("metadata.labels", "sidecar.istio.io/inject") == 'metadata.labels["sidecar.istio.io/inject"]'
    )


def test_diff_reports_changed_added_and_removed_leaves() -> None:
    sent = {"a": {"b": 1, "c": "x"}, "gone": True}
    stored = {"a": {"b": 2, "c": "x", "d": [1]}}
    assert diff(sent, stored) == [
        Change("a.b", 1, 2),
        Change("a.d", MISSING, [1]),
        Change("gone", True, MISSING),
    ]


def test_diff_matches_named_list_items_by_name_whatever_their_order() -> None:
    sent = {"containers": [{"name": "main", "image": "a"}, {"name": "collector", "args": ["-t", "x"]}]}
    stored = {
        "containers": [{"name": "collector", "args": ["-w=false", "-t", "x"]}, {"name": "main", "image": "a"}]
    }
    assert diff(sent, stored) == [Change("containers[collector].args", ["-t", "x"], ["-w=false", "-t", "x"])]


def test_diff_walks_equal_length_lists_by_index() -> None:
    assert diff({"command": ["sh", "-c", "old"]}, {"command": ["sh", "-c", "new"]}) == [
        Change("command[2]", "old", "new")
    ]


def test_diff_treats_empty_and_absent_as_the_same() -> None:
    assert diff({"metadata": {}, "args": []}, {"spec": {"x": None}}) == []


def test_ignored_patterns_hide_only_what_the_sender_left_out() -> None:
    ignore = ("spec.dnsPolicy", "*containers[*].resources", "spec.volumes[kube-api-access-*]")
    sent = {"spec": {"containers": [{"name": "c"}], "dnsPolicy": "None"}}
    stored = {
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}],
            "dnsPolicy": "ClusterFirst",
            "volumes": [{"name": "kube-api-access-abcde", "projected": {}}, {"name": "data"}],
        }
    }
    # A sent value that changed is shown even if the field is one the server defaults.
    assert paths(diff(sent, stored, ignore)) == ["spec.dnsPolicy", "spec.volumes[data].name"]


def test_unrelated_pod_with_every_server_default_is_unchanged() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "namespace": "alice"},
        "spec": {"containers": [{"name": "app", "image": "python:3.11-slim"}]},
    }
    assert admission_diff(pod, as_stored(pod)) == []


def test_trial_job_diff_is_exactly_the_webhook_mutation() -> None:
    job = katib_objects.trial_job()
    lines = [describe(change) for change in admission_diff(job, admitted(job))]
    assert lines == [
        '~ spec.template.metadata.annotations["sidecar.istio.io/inject"]: "false" → "true"',
        '+ spec.template.metadata.labels.kubeflow-extension: "true"',
        '+ spec.template.metadata.labels["sidecar.istio.io/inject"]: "true"',
        "~ spec.template.spec.serviceAccountName: pipeline-runner → default-editor",
    ]


def test_collector_diff_shows_the_wrapper_shape_and_the_added_flag() -> None:
    pod = katib_objects.trial_pod()
    lines = [describe(change) for change in admission_diff(pod, admitted(pod))]
    name = collector.FILE_COLLECTOR_CONTAINER
    script = collector.stop_script(
        CONFIG.collector_entrypoints["file-metrics-collector"], CONFIG.sidecar_stop
    )
    assert lines == [
        f"~ spec.containers[{name}].args: inserted [-w=false] at [0]",
        f"+ spec.containers[{name}].command: "
        f"[sh, -c, <{len(script.splitlines())} lines: {collector.MARKER}>, {name}]",
    ]


def test_kale_diff_shows_the_inserted_program_by_first_line_and_length() -> None:
    pod = katib_objects.trial_pod(kale="0.7", proxy=None)
    (change,) = [c for c in admission_diff(pod, admitted(pod)) if c.path.startswith("spec.containers[main]")]
    assert change.path == "spec.containers[main].args[0]"
    inserted = change.after[: len(change.after) - len(change.before)]
    assert describe(change).startswith("~ spec.containers[main].args[0]: inserted <")
    assert f"lines: {kale.MARKER}> after " in describe(change)
    assert inserted.count("\n") > 10


def test_job_pod_diff_leaves_out_what_the_job_controller_sets() -> None:
    template = as_stored(katib_objects.trial_job(kale=None))["spec"]["template"]
    from_template = {"apiVersion": "v1", "kind": "Pod", **template}
    pod = copy.deepcopy(from_template)
    pod["metadata"] |= {
        "name": "random-exp-x7k2p-abcde",
        "generateName": "random-exp-x7k2p-",
        "namespace": "alice",
        "ownerReferences": [{"kind": "Job", "name": "random-exp-x7k2p", "uid": "0b1e", "controller": True}],
        "finalizers": ["batch.kubernetes.io/job-tracking"],
    }
    assert admission_diff(from_template, as_stored(pod), JOB_CONTROLLER_FIELDS) == []


def test_summarize_keeps_values_short_and_unambiguous() -> None:
    assert summarize("true") == '"true"'
    assert summarize("default-editor") == "default-editor"
    assert summarize("x" * 100, width=10) == "xxxxxxxxx…"
    assert summarize("#!/bin/sh\necho\n") == "<2 lines: #!/bin/sh>"
    assert summarize([1, "a", {"k": "v"}]) == '[1, a, {"k":"v"}]'


def test_describe_marks_additions_removals_and_changes() -> None:
    assert describe(Change("a", MISSING, "x")) == "+ a: x"
    assert describe(Change("a", "x", MISSING)) == "- a: x"
    assert describe(Change("a", 1, 2)) == "~ a: 1 → 2"
    assert describe(Change("args", ["-t", "x"], ["-t"])) == "~ args: removed [x] at [1]"


def test_facts_name_the_principal_and_the_header_value() -> None:
    profile = {"metadata": {"name": "alice"}, "spec": {"owner": {"name": "alice@example.com"}}}
    children = {obj["kind"]: obj for obj in desired("alice", profile, CURRENT_ISTIO, CONFIG)}
    policy, envoy_filter = children["AuthorizationPolicy"], children["EnvoyFilter"]
    assert facts(policy) == [
        "ALLOW cluster.local/ns/alice/sa/default-editor → pods app=ml-pipeline",
        "only when request.headers[kubeflow-userid] == alice@example.com",
    ]
    assert facts(envoy_filter)[0] == "sets kubeflow-userid: alice@example.com (OVERWRITE_IF_EXISTS_OR_ADD)"


def test_facts_of_the_token_rule_say_bearer_present_and_identity_header_absent() -> None:
    profile = {"metadata": {"name": "alice"}, "spec": {"owner": {"name": "alice@example.com"}}}
    (policy,) = desired("alice", profile, CURRENT_ISTIO, Config(identity_mode="token"))
    assert facts(policy) == [
        "ALLOW cluster.local/ns/alice/sa/default-editor → pods app=ml-pipeline",
        "only when request.headers[authorization] present and request.headers[kubeflow-userid] absent",
    ]


def test_token_checks_fail_without_the_token_and_pass_with_it() -> None:
    token_config = Config(identity_mode="token")
    pod = katib_objects.notebook_pod()
    checks = Checks()
    check_token(checks, "unmutated", pod["spec"], token_config)
    assert checks.missing
    mutated = mutate_object(pod, token_config).obj
    checks = Checks()
    check_token(checks, "mutated", mutated["spec"], token_config)
    assert checks.results and not checks.missing
    checks = Checks()
    check_token(checks, "header mode", mutated["spec"], CONFIG)
    assert checks.missing == ["header mode: no token volume in header mode"]


def test_children_check_wants_no_envoy_filter_in_token_mode() -> None:
    token_config = Config(identity_mode="token")
    profile = {"metadata": {"name": "alice"}, "spec": {"owner": {"name": "alice@example.com"}}}
    header_children = {o["kind"]: o for o in desired("alice", profile, CURRENT_ISTIO, CONFIG)}
    checks = Checks()
    check_children(checks, header_children, token_config)
    assert "no EnvoyFilter in token identity mode" in checks.missing


def test_the_report_calls_an_envoy_filter_missing_only_where_the_mode_needs_one() -> None:
    profile = {"metadata": {"name": "alice"}, "spec": {"owner": {"name": "alice@example.com"}}}
    policy = next(
        o for o in desired("alice", profile, CURRENT_ISTIO, CONFIG) if o["kind"] == "AuthorizationPolicy"
    )
    found = {"AuthorizationPolicy": policy, "EnvoyFilter": None}
    token = children_lines(found, "token")
    assert not any("MISSING" in line for line in token), token
    assert any(line.startswith("  EnvoyFilter: none, as expected in token mode") for line in token)
    for mode in ("header", "both"):
        assert f"  EnvoyFilter MISSING (expected in {mode} mode)" in children_lines(found, mode)
    assert "  AuthorizationPolicy MISSING (expected in token mode)" in children_lines(
        {"AuthorizationPolicy": None}, "token"
    )
