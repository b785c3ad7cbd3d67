"""Kale trials built and run with the real kubeflow-kale releases and their kfp clients.

Each trial command comes from Kale's own template (0.6: ``kale/rpc/katib.py`` RAW_TEMPLATE, a v1alpha3
goTemplate; 0.7 and later: ``katibutils`` JOB_CMD for v1beta1 and RAW_TEMPLATE_V1ALPHA3), rendered as
Katib renders it and wrapped as Katib's Pod webhook wraps a StdOut-collected container. The webhook's
mutation patches the Pod, and the patched command runs under ``sh`` with real Kale and a real kfp client
against a loopback stand-in for ml-pipeline that fails as planned. The container's service-account
namespace file, which Kale and kfp read at a fixed path, is provided in a mount namespace of the test's own.

Kale 2.3.0 (the newest) cannot complete a Katib trial with the kfp 2 it requires: its run creation passes
no pipeline file. For it, the patched program's retry is run before Kale's own ``kfputils.get_run``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from e2e.peers.kale_peers import NEWEST, kale_experiment, kale_python, trial_job
from e2e.peers.ml_pipeline_standin import (
    METRIC,
    NAMESPACE,
    PIPELINE_ID,
    RUN_ID,
    VERSION_ID,
    Fault,
    MlPipelineStandIn,
    ml_pipeline_standin,
)
from service.config import Config
from tests.webhook.katib_objects import katib_wrapped, kubelet_expand, trial_pod
from webhook.mutations.kale import FORBIDDEN, HOOK, MARKER, mutate

pytestmark = pytest.mark.timeout(900)  # a cold Kale environment is created by the first test that needs it

TRIAL = "random-exp-x7k2p"
ASSIGNMENTS = {"lr": "0.01", "momentum": "0.9"}
RETRY = dataclasses.replace(Config(), kale_retry_seconds=120, kale_retry_max_delay_seconds=1)
"""A short pause between retries; the budget is far above what the planned faults need."""

# (Kale release, Katib API its template targets)
SHAPES = [("0.6.1", "v1alpha3"), ("0.7.0", "v1beta1"), ("0.7.0", "v1alpha3"), (NEWEST, "v1beta1")]
RUNNABLE = ["0.6.1", "0.7.0"]
"""Releases whose trial can complete: they run with kfp 1.8 (KFP v1 API), as their trial image did."""


def api_version_of(version: str) -> str:
    """The Katib API a release's trials usually run on: 0.6 knows only v1alpha3."""
    return "v1alpha3" if version == "0.6.1" else "v1beta1"


@functools.cache
def kale_command(version: str, api_version: str) -> str:
    """The main container's command, as Kale's template and Katib make it."""
    experiment = kale_experiment(version, api_version, PIPELINE_ID, VERSION_ID, list(ASSIGNMENTS))
    job = trial_job(experiment, TRIAL, NAMESPACE, ASSIGNMENTS)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (command,) = container["command"]
    assert "args" not in container
    return str(command)


def kale_pod(version: str, api_version: str, log_dir: str = "/var/log/katib") -> dict[str, Any]:
    """A trial Pod whose main container runs Kale's command, wrapped by Katib for the StdOut collector."""
    pod = trial_pod(kale="0.7")
    pod["spec"]["containers"][0].update(katib_wrapped(kale_command(version, api_version), log_dir))
    return pod


def patched(pod: dict[str, Any], config: Config = RETRY) -> dict[str, Any]:
    result = mutate(pod, config)
    assert [op["path"] for op in result.ops] == ["/spec/containers/0/args/0"]
    after: dict[str, Any] = jsonpatch.apply_patch(pod, list(result.ops))
    assert mutate(after, config).ops == ()
    return after


def shell_line(pod: dict[str, Any]) -> str:
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c"]
    return str(container["args"][0])


def patched_program(line: str) -> str:
    """The python program of Kale's ``python3 -u -c "..."`` in a shell line."""
    return line[line.index('-c "') + 4 : line.rindex('"')]


@dataclasses.dataclass
class Trial:
    returncode: int
    log: str
    """The trial's metrics.log: Kale's output and the retry program's lines."""
    completed: bool
    """Katib's completion marker was written."""


def run_trial(line: str, version: str, standin: MlPipelineStandIn, tmp_path: Path) -> Trial:
    """Run the trial's shell line as the kubelet would, Kale's python first on PATH, against the stand-in."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{kale_python(version).parent}:/usr/bin:/bin",
        "HOME": str(home),
        "HOSTNAME": f"{TRIAL}-abcde",
        "KF_PIPELINES_ENDPOINT": standin.url,
        "KUBECONFIG": str(standin.kubeconfig(tmp_path / "kubeconfig")),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    # A private /run holding the service-account namespace file, as the kubelet mounts it.
    mount = (
        "mount -t tmpfs kubeflow-extension-test /run"
        " && mkdir -p /run/secrets/kubernetes.io/serviceaccount"
        ' && printf %s "$1" > /run/secrets/kubernetes.io/serviceaccount/namespace'
        ' && exec sh -c "$2"'
    )
    argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount, "trial"]
    completed = subprocess.run(
        [*argv, NAMESPACE, kubelet_expand(line, {})],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log_file = tmp_path / "metrics.log"
    log = log_file.read_text() if log_file.exists() else ""
    markers = [path.read_text().strip() for path in tmp_path.glob("*.pid")]
    return Trial(completed.returncode, log + completed.stdout + completed.stderr, markers == ["completed"])


@pytest.mark.parametrize(("version", "api_version"), SHAPES)
def test_kale_trial_command_is_patched_before_its_import(version: str, api_version: str) -> None:
    pod = kale_pod(version, api_version)
    before = shell_line(pod)
    after = shell_line(patched(pod))
    hook = HOOK.search(before)
    assert hook is not None, before
    inserted = after[hook.start() : len(after) - (len(before) - hook.start())]
    assert after == before[: hook.start()] + inserted + before[hook.start() :]
    assert inserted.startswith(MARKER)
    assert not FORBIDDEN & set(inserted)
    ast.parse(patched_program(after), feature_version=(3, 6))


@pytest.mark.parametrize("version", RUNNABLE)
def test_real_kale_trial_survives_dropped_connections_503_and_429(version: str, tmp_path: Path) -> None:
    line = shell_line(patched(kale_pod(version, api_version_of(version), str(tmp_path))))
    # urllib3 retries a GET whose connection drops three times by itself; the fourth drop reaches Kale.
    faults: dict[str, list[Fault]] = {"get_run": ["drop", "drop", "drop", "drop", 503, 429]}
    with ml_pipeline_standin(faults) as standin:
        trial = run_trial(line, version, standin, tmp_path)
    assert trial.returncode == 0, trial.log
    assert trial.completed
    name, value = METRIC
    assert f"{name}={value}" in trial.log
    retries = [line for line in trial.log.splitlines() if "kubeflow-extension: get_run failed" in line]
    assert len(retries) == 3, trial.log
    assert "MaxRetryError" in retries[0]
    assert "HTTP 503 Service Unavailable), retry 2" in retries[1]
    assert "HTTP 429 Too Many Requests), retry 3" in retries[2]
    answers = standin.answered("get_run")
    assert answers[:6] == ["drop", "drop", "drop", "drop", 503, 429]
    assert answers[6:] == [200] * len(answers[6:]) and len(answers) >= 8  # workflow, wait loop, metrics


@pytest.mark.parametrize("version", RUNNABLE)
@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (401, "Unauthorized")])
def test_real_kale_trial_fails_at_once_on_a_permanent_error(
    version: str, status: int, reason: str, tmp_path: Path
) -> None:
    pod = kale_pod(version, api_version_of(version), str(tmp_path))
    line = shell_line(patched(pod, Config()))  # a 900 s budget, were it retried
    with ml_pipeline_standin({"get_run": [status] * 100}) as standin:
        trial = run_trial(line, version, standin, tmp_path)
    assert trial.returncode != 0
    assert not trial.completed
    assert f"get_run failed (ApiException: HTTP {status} {reason}), not retried" in trial.log
    assert standin.answered("get_run") == [status]


@pytest.mark.parametrize("version", RUNNABLE)
def test_unpatched_real_kale_trial_fails_on_one_503(version: str, tmp_path: Path) -> None:
    line = shell_line(kale_pod(version, api_version_of(version), str(tmp_path)))
    with ml_pipeline_standin({"get_run": [503]}) as standin:
        trial = run_trial(line, version, standin, tmp_path)
    assert trial.returncode != 0
    assert not trial.completed
    assert "ApiException" in trial.log
    assert standin.answered("get_run") == [503]


def test_newest_kale_trial_fails_in_kales_own_run_creation_patched_or_not(tmp_path: Path) -> None:
    """Kale 2.3.0's Katib trial passes no pipeline file to kfp 2's run creation: it fails before any polling,
    with or without the patch, and the patch changes nothing about that."""
    pod = kale_pod(NEWEST, "v1beta1", str(tmp_path))
    outcomes = []
    for line in (shell_line(pod), shell_line(patched(pod))):
        with ml_pipeline_standin() as standin:
            trial = run_trial(line, NEWEST, standin, tmp_path)
        (tmp_path / "metrics.log").unlink()
        assert standin.answered("create_run") == []
        assert standin.answered("get_run") == []
        assert trial.returncode != 0
        assert not trial.completed
        outcomes.append(trial.log.strip().splitlines()[-1])
    assert outcomes[0] == outcomes[1] == "TypeError: expected str, bytes or os.PathLike object, not NoneType"


def newest_get_run(
    faults: list[Fault], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], list[Fault]]:
    """The retry program the webhook inserts into Kale 2.3.0's trial, then Kale's own ``kfputils.get_run``
    with kfp 2.16 against the stand-in (the call its trial would make, had run creation worked)."""
    program = patched_program(shell_line(patched(kale_pod(NEWEST, "v1beta1", str(tmp_path)))))
    hook = HOOK.search(program)
    assert hook is not None, program
    retry = program[: hook.start()]
    call = f"import kale.common.kfputils\nprint('state=' + kale.common.kfputils.get_run('{RUN_ID}').state)\n"
    with ml_pipeline_standin({"get_run": faults}) as standin:
        env = {"HOME": str(tmp_path), "KF_PIPELINES_ENDPOINT": standin.url, "PATH": "/usr/bin:/bin"}
        completed = subprocess.run(
            [str(kale_python(NEWEST)), "-u", "-c", retry + call],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return completed, standin.answered("get_run")


def test_newest_kale_get_run_is_retried_through_drops_503_and_429(tmp_path: Path) -> None:
    completed, answers = newest_get_run(["drop", "drop", "drop", "drop", 503, 429], tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "state=SUCCEEDED" in completed.stdout
    retries = [line for line in completed.stderr.splitlines() if "kubeflow-extension: get_run failed" in line]
    assert len(retries) == 3, completed.stderr
    assert "MaxRetryError" in retries[0]
    assert "HTTP 503 Service Unavailable), retry 2" in retries[1]
    assert "HTTP 429 Too Many Requests), retry 3" in retries[2]
    assert answers == ["drop", "drop", "drop", "drop", 503, 429, 200]


@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (401, "Unauthorized")])
def test_newest_kale_get_run_fails_at_once_on_a_permanent_error(
    status: int, reason: str, tmp_path: Path
) -> None:
    completed, answers = newest_get_run([status] * 100, tmp_path)
    assert completed.returncode != 0
    assert f"get_run failed (ApiException: HTTP {status} {reason}), not retried" in completed.stderr
    assert answers == [status]
