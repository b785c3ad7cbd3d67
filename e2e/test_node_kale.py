"""A Kale trial on the local node: the Job Katib makes from kubeflow-kale 0.7.0's own Experiment, its main
container running Kale's trial command with the real ``kubeflow-kale`` and kfp 1.8.22 (from the cached
virtualenv of ``e2e.peers.kale_peers``), Katib v0.19.0's own Pod injection and StdOut collector reporting to
Katib's db-manager, a pilot-agent stand-in as the classic ``istio-proxy``, and our webhook. ml-pipeline is the
loopback stand-in (the Pod uses the host network), which drops the first connections of ``get_run``: more
than urllib3 absorbs by its own retries.

With our webhook the trial retries through the drops, finishes and reports; without it, Kale's trial fails at
the first drop that reaches it, Katib's collector gives up without reporting, and the proxy keeps the Pod, so
the Job, running for ever.

Kale 0.6.1 is left out: its trials are Katib v1alpha3 goTemplates (Katib <= 0.9), not what this Katib runs.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.controlplane import Kubectl
from e2e.cluster.node import IMAGE_REGISTRY, Node, pod_spec
from e2e.framework import oci
from e2e.framework.processes import eventually
from e2e.peers.kale_peers import kale_experiment, kale_python, trial_job
from e2e.peers.katib_node import (
    HANG_WINDOW,
    PROFILE,
    TRIAL_TIMEOUT,
    UNPATCHED,
    Katib,
    container_log,
    container_states,
    job_condition,
    katib_config,
    main_ended,
    proxy_container,
    proxy_stop_line,
    reported,
    trial_owner,
    trial_pod,
)
from e2e.peers.ml_pipeline_standin import (
    METRIC,
    PIPELINE_ID,
    VERSION_ID,
    MlPipelineStandIn,
    ml_pipeline_standin,
)
from e2e.peers.python_image import PythonRuntime, python_runtime
from webhook.mutations import collector, kale

pytestmark = [pytest.mark.e2e, pytest.mark.node]

KALE_VERSION = "0.7.0"
KALE_IMAGE = f"{IMAGE_REGISTRY}/kale-trial:{KALE_VERSION}"
EXPERIMENT = "random-exp"
ASSIGNMENTS = {"lr": "0.01", "momentum": "0.9"}
KUBECONFIG = "/etc/kale-standin/kubeconfig"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DROPS = 8
"""Dropped ``get_run`` connections: urllib3 retries a GET three times by itself; Kale's call fails twice."""
METRICS_FILE = "/var/log/katib/metrics.log"
COLLECTOR_SPEC = {
    "collector": {"kind": "StdOut"},
    "source": {"fileSystemPath": {"path": METRICS_FILE, "kind": "File", "format": "TEXT"}},
}
"""A Kale Experiment's collector after Katib's defaulting (Kale sets none)."""
OBJECTIVE = {"type": "maximize", "objectiveMetricName": METRIC[0]}


@pytest.fixture(scope="module")
def kale_runtime(katib: Katib, kubectl: Kubectl, node: Node) -> PythonRuntime:
    """Kale's trial image on the node: BusyBox and the host libraries Kale's Python needs; the virtualenv
    and its Python installation are mounted from the host. ``pipeline-runner`` (the account Kale's Job names)
    exists where our webhook does not replace it, so that the trial there gets a Pod at all."""
    runtime = python_runtime(kale_python(KALE_VERSION))
    node.import_image(KALE_IMAGE, runtime.layer(node.busybox_layer()), oci.ImageConfig(cmd=["sh"]))
    account = {"name": "pipeline-runner", "namespace": UNPATCHED}
    kubectl.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account}])
    return runtime


@functools.cache
def kales_experiment() -> dict[str, Any]:
    """The Experiment kubeflow-kale builds for a pipeline (``katibutils``), its trial template included."""
    return kale_experiment(KALE_VERSION, "v1beta1", PIPELINE_ID, VERSION_ID, list(ASSIGNMENTS))


def katib_objects(name: str, namespace: str) -> list[dict[str, Any]]:
    """Kale's own Experiment (with the objective its notebook gives it and Katib's defaults), its Suggestion
    and the Trial, as Katib's controllers keep them (Katib's injector reads them)."""
    experiment = copy.deepcopy(kales_experiment())
    experiment["metadata"]["namespace"] = namespace
    algorithm = {"algorithmName": "random"}
    experiment["spec"].update(objective=OBJECTIVE, algorithm=algorithm, metricsCollectorSpec=COLLECTOR_SPEC)
    meta = {"name": name, "namespace": namespace, "labels": {"katib.kubeflow.org/experiment": EXPERIMENT}}
    trial_spec = {"objective": OBJECTIVE, "metricsCollector": COLLECTOR_SPEC, "primaryContainerName": "main"}
    return [
        experiment,
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Suggestion",
            "metadata": {"name": EXPERIMENT, "namespace": namespace},
            "spec": {"algorithm": algorithm},
        },
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "metadata": meta, "spec": trial_spec},
    ]


def kale_job(
    name: str, namespace: str, trial_uid: str, runtime: PythonRuntime, kubeconfig: Path, endpoint: str
) -> dict[str, Any]:
    """The trial's Job as Katib renders it from Kale's own template, for this node: Kale's image is ours
    (its Python and ``kale`` from the host), ml-pipeline and the Kubernetes API Kale calls are the stand-in
    (``KF_PIPELINES_ENDPOINT``, a kubeconfig; no ServiceAccount token, so Kale's client does not take the
    in-cluster configuration, and the namespace file it reads from a downward API volume), and the Pod has
    the proxy stand-in in both namespaces, so that our webhook is the only difference between the two trials.
    (In a cluster, Kale's ``sidecar.istio.io/inject: "false"`` keeps Istio's proxy out unless our webhook
    turns it to true, and the ``pipeline-runner`` account it names is missing from profile namespaces.)"""
    job: dict[str, Any] = trial_job(kales_experiment(), name, namespace, ASSIGNMENTS)
    template = job["spec"]["template"]
    (main,) = template["spec"]["containers"]
    volumes, mounts = runtime.volumes()
    main.update(
        image=KALE_IMAGE,
        env=[
            {"name": "PATH", "value": f"{runtime.venv / 'bin'}:/bin"},
            {"name": "KF_PIPELINES_ENDPOINT", "value": endpoint},
            {"name": "KUBECONFIG", "value": KUBECONFIG},
        ],
        volumeMounts=[
            *mounts,
            {"name": "standin-kubeconfig", "mountPath": KUBECONFIG, "readOnly": True},
            {"name": "pod-namespace", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
        ],
    )
    namespace_file = {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
    volumes += [
        {"name": "standin-kubeconfig", "hostPath": {"path": str(kubeconfig), "type": "File"}},
        {"name": "pod-namespace", "downwardAPI": {"items": [namespace_file]}},
    ]
    others = {key: value for key, value in template["spec"].items() if key != "containers"}
    template["spec"] = pod_spec(
        [main, proxy_container()], **others, automountServiceAccountToken=False, volumes=volumes
    )
    template["metadata"]["labels"].update(
        {"katib.kubeflow.org/experiment": EXPERIMENT, "katib.kubeflow.org/trial": name}
    )
    job["metadata"] = {"name": name, "namespace": namespace, "ownerReferences": trial_owner(name, trial_uid)}
    return job


def start_kale_trial(
    kubectl: Kubectl,
    name: str,
    namespace: str,
    runtime: PythonRuntime,
    standin: MlPipelineStandIn,
    directory: Path,
) -> None:
    kubectl.apply([katib_config(), *katib_objects(name, namespace)])  # the collector on Debian's BusyBox
    uid = kubectl("get", "trial", name, "-n", namespace)["metadata"]["uid"]
    kubeconfig = standin.kubeconfig(directory / "kubeconfig")
    job = kale_job(name, namespace, uid, runtime, kubeconfig, standin.url)
    kubectl.run("create", "-f", "-", stdin=json.dumps(job))


@dataclass
class RunningTrial:
    name: str
    namespace: str
    standin: MlPipelineStandIn


@pytest.fixture(scope="module")
def unpatched_trial(
    katib: Katib, kubectl: Kubectl, kale_runtime: PythonRuntime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningTrial]:
    """The trial where only Katib's injector applies, with its own stand-in dropping as many connections.
    (Not side by side with the other: on the host network, two proxy stand-ins cannot both serve 15020.)"""
    name = "random-exp-unpatched"
    with ml_pipeline_standin({"get_run": ["drop"] * DROPS}) as standin:
        directory = tmp_path_factory.mktemp("unpatched-trial")
        start_kale_trial(kubectl, name, UNPATCHED, kale_runtime, standin, directory)
        yield RunningTrial(name, UNPATCHED, standin)
        kubectl.run("delete", "job", name, "-n", UNPATCHED, "--cascade=foreground", "--timeout=120s")


def main_output(node: Node, pod: dict[str, Any]) -> str:
    """What Kale's command wrote, while its Pod lives: Katib's wrapper sends it to metrics.log in the Pod's
    metrics volume, read here on the node. (Katib's collector echoes each line to its log, but a collector
    that gives up exits before it has echoed the last ones.)"""
    volume = node.kubelet_dir / "pods" / str(pod["metadata"]["uid"]) / "volumes" / "kubernetes.io~empty-dir"
    return (volume / "metrics-volume" / "metrics.log").read_text()


def test_kale_trial_retries_through_dropped_connections_and_reports(
    katib: Katib, kubectl: Kubectl, kale_runtime: PythonRuntime, tmp_path: Path
) -> None:
    name = "random-exp-retried"
    with ml_pipeline_standin({"get_run": ["drop"] * DROPS}) as standin:
        start_kale_trial(kubectl, name, PROFILE, kale_runtime, standin, tmp_path)
        condition = eventually(
            lambda: job_condition(kubectl, name, PROFILE), timeout=TRIAL_TIMEOUT, what="the Kale trial Job"
        )
        answers = standin.answered("get_run")
    pod = trial_pod(kubectl, name, PROFILE)
    assert pod is not None
    states = container_states(pod)
    exit_codes = {c: state.get("terminated", {}).get("exitCode") for c, state in states.items()}
    assert exit_codes == {"main": 0, "istio-proxy": 0, collector.FILE_COLLECTOR_CONTAINER: 0}
    assert condition == "Complete"
    # Katib wrapped Kale's command for its StdOut collector; our webhook put the retry program into it.
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    (line,) = containers["main"]["args"]
    assert kale.MARKER in line and line.endswith(
        " 1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$$$.pid"
    )
    wrapped = containers[collector.FILE_COLLECTOR_CONTAINER]
    assert collector.is_wrapper(wrapped["command"]) and collector.WAIT_FLAG in wrapped["args"]
    # Katib's collector echoes the main container's output (the volume holding it is gone with the Pod).
    output = container_log(kubectl, pod, collector.FILE_COLLECTOR_CONTAINER)
    retries = [line for line in output.splitlines() if "kubeflow-extension: get_run failed" in line]
    print("the retry program, in the main container's output:", *retries, sep="\n  ")
    assert len(retries) == 2, output
    assert all("MaxRetryError" in line for line in retries), output
    assert "), retry 1 in " in retries[0] and "), retry 2 in " in retries[1]
    # The stand-in dropped every connection planned, then answered the retried call, the wait loop and the
    # metrics fetch.
    assert answers[:DROPS] == ["drop"] * DROPS
    assert answers[DROPS:] == [200] * len(answers[DROPS:]) and len(answers) >= DROPS + 3, answers
    # The metric reached Katib's database, read back through Katib's db-manager.
    logs = katib.database.observation_logs(name)
    print("observation logs read back through Katib's db-manager:", json.dumps(logs, indent=1))
    assert reported(logs) == {METRIC[0]: [str(METRIC[1])]}
    # The proxy was told to stop once Kale and the collector were gone.
    stop_line, proxy_log = proxy_stop_line(kubectl, pod)
    print("istio-proxy stand-in:", stop_line)
    assert stop_line.startswith("stopped by POST /quitquitquit"), proxy_log
    others = stop_line.split("other processes:", 1)[1]
    assert "file-metricscollector" not in others and "python" not in others, proxy_log


def test_kale_trial_without_our_webhook_fails_at_the_first_drop_and_its_pod_never_ends(
    katib: Katib, kubectl: Kubectl, node: Node, unpatched_trial: RunningTrial
) -> None:
    name, namespace = unpatched_trial.name, unpatched_trial.namespace
    pod = main_ended(kubectl, name, namespace, "main")
    main = container_states(pod)["main"]["terminated"]
    ended = datetime.fromisoformat(main["finishedAt"])
    time.sleep(max(0.0, HANG_WINDOW - (datetime.now(UTC) - ended).total_seconds()))
    # Kale's one get_run: urllib3's three retries, then the error that ends the trial.
    assert unpatched_trial.standin.answered("get_run") == ["drop"] * 4
    assert main["exitCode"] != 0
    output = main_output(node, pod)
    error = output.strip().splitlines()[-1]
    assert error.startswith("urllib3.exceptions.MaxRetryError: "), output
    assert "kubeflow-extension: get_run" not in output, output
    print(f"main container: exit code {main['exitCode']} after", error)
    # Katib's collector gives up on a failed training container without reporting; the proxy stays.
    collector_log = container_log(kubectl, pod, collector.FILE_COLLECTOR_CONTAINER)
    assert "training container is failed" in collector_log, collector_log
    later = trial_pod(kubectl, name, namespace)
    assert later is not None
    states = container_states(later)
    print(f"{HANG_WINDOW:.0f} s after the main container ended:", json.dumps(states))
    assert states[collector.FILE_COLLECTOR_CONTAINER]["terminated"]["exitCode"] != 0
    assert "running" in states["istio-proxy"]
    assert job_condition(kubectl, name, namespace) is None
    assert katib.database.observation_logs(name) == []
