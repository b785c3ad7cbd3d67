"""``create pod`` through kube-apiserver with our webhook and with Kyverno doing the same job, side by side.

The job is our notebook mutation: the workload label on a notebook Pod (5 KiB). Sides, each its own
namespace, alternated in one run at 1 and 10 clients: no webhook; our webhook (a profile namespace);
Kyverno with a ``patchStrategicMerge`` ClusterPolicy, with a ``patchesJson6902`` one, and with a CEL
``MutatingPolicy``; and the bare ceiling. Kyverno (``bench/kyverno.py``) is built on demand and runs as a
local process. Per side: added p50/p99, Pods/s, CPU per Pod of kube-apiserver and of the side's webhook
process, and the RSS of each webhook process.

``python -m bench.pod_kyverno [--quick]``; ``python -m bench --only pods --with-kyverno``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench import kyverno, stats
from bench.bodies import notebook_body
from bench.common import Durations, progress, run_alone
from bench.pod_creation import (
    Creator,
    admin_context,
    ceiling_configuration,
    namespace_documents,
    start_ceiling,
)
from bench.procs import REPO_ROOT, cpu_seconds, is_loopback_only, memory_mb, socket_addresses
from service.config import Config
from tests.webhook.katib_objects import trial_job

SIDES = {
    "none": "kv-none",
    "ours": "kv-ours",
    "strategic-merge": "kv-strategic-merge",
    "json6902": "kv-json6902",
    "cel": "kv-cel",
    "ceiling": "kv-ceiling",
}
KYVERNO_SIDES = ("strategic-merge", "json6902", "cel")
TRIAL_JOB_NS = "kv-trial-job"
"""Where Kyverno's trial Job policy applies; the same Job in ``SIDES["ours"]`` gets our webhook's change."""
JOB_CONTROLLER_LABELS = (
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
)


def notebook_pod(namespace: str) -> bytes:
    pod = notebook_body()
    pod["metadata"].pop("name", None)
    pod["metadata"]["generateName"] = "my-notebook-"
    pod["metadata"]["namespace"] = namespace
    return orjson.dumps(pod)


def labelled(answer: bytes, label: str) -> bool:
    return bool(orjson.loads(answer)["metadata"].get("labels", {}).get(label) == "true")


def touched_by_kyverno(answer: bytes) -> bool:
    """Kyverno records the patches it applied in an annotation of its own."""
    return any("kyverno" in key for key in orjson.loads(answer)["metadata"].get("annotations", {}))


def wait_until_labelled(creator: Creator, label: str, timeout: float = 300.0) -> None:
    """Every webhook side labels its Pods (Kyverno registers its webhooks asynchronously); the sides
    without a mutating webhook do not, and Kyverno leaves every namespace but its own alone."""
    connection = creator.connection()
    deadline = time.monotonic() + timeout
    waiting = [s for s in SIDES if s not in ("none", "ceiling")]
    errors: dict[str, str] = {}

    def labels_now(side: str) -> bool:
        # Kyverno registers its webhooks (failure policy Fail) before its server has its certificate:
        # a refusal while it starts is not yet an answer.
        try:
            return labelled(creator.create(connection, SIDES[side]), label)
        except RuntimeError as error:
            errors[side] = str(error)
            return False

    while waiting and time.monotonic() < deadline:
        waiting = [s for s in waiting if not labels_now(s)]
        if waiting:
            time.sleep(2)
    if waiting:
        raise RuntimeError(f"no label after {timeout} s on: {', '.join(waiting)}; last errors {errors}")
    for side in ("none", "ceiling", "ours"):
        answer = creator.create(connection, SIDES[side])
        if side != "ours" and labelled(answer, label):
            raise RuntimeError(f"a Pod in {SIDES[side]}, which no labelling webhook selects, was labelled")
        if touched_by_kyverno(answer):
            raise RuntimeError(f"Kyverno mutated a Pod in {SIDES[side]}, outside its namespaces")
    connection.close()


def trial_job_template(creator: Creator, namespace: str) -> dict[str, Any]:
    """A Katib trial Job created in ``namespace``: its Pod template as admitted, the per-Job labels
    kube-apiserver adds left out."""
    job = trial_job()
    job["metadata"].pop("name")
    job["metadata"]["generateName"] = "trial-"
    job["metadata"]["namespace"] = namespace
    connection = creator.connection()
    status, answer = connection.request(
        "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", orjson.dumps(job)
    )
    connection.close()
    if status != 201:
        raise RuntimeError(f"create job in {namespace}: {status} {answer[:300]!r}")
    template: dict[str, Any] = orjson.loads(answer)["spec"]["template"]
    for name in JOB_CONTROLLER_LABELS:
        template["metadata"].get("labels", {}).pop(name, None)
    return template


def compare_trial_job(creator: Creator, label: str, timeout: float = 120.0) -> dict[str, Any]:
    """The trial Job's template from our webhook and from Kyverno's policy (once that is registered)."""
    deadline = time.monotonic() + timeout
    kyverno_template = trial_job_template(creator, TRIAL_JOB_NS)
    while label not in kyverno_template["metadata"].get("labels", {}) and time.monotonic() < deadline:
        time.sleep(2)
        kyverno_template = trial_job_template(creator, TRIAL_JOB_NS)
    ours = trial_job_template(creator, SIDES["ours"])
    return {"same": ours == kyverno_template, "ours": ours, "kyverno": kyverno_template}


def sample_sockets(pid: int, seen: set[tuple[str, str, str]], stop: threading.Event) -> None:
    """Every inet socket the process holds, sampled every half second until ``stop``."""
    while not stop.is_set():
        try:
            seen |= socket_addresses(pid)
        except FileNotFoundError:  # the process has exited
            return
        stop.wait(0.5)


def kyverno_webhooks(plane: Any) -> list[dict[str, Any]]:
    """Kyverno's registered webhooks: name, URL and namespace selector."""
    found = []
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        for item in plane.kubectl.json("get", kind)["items"]:
            if not item["metadata"]["name"].startswith("kyverno"):
                continue
            for hook in item.get("webhooks", []):
                found.append(
                    {
                        "name": f"{kind[: -len('webhookconfigurations')]}/{hook['name']}",
                        "url": hook["clientConfig"].get("url", ""),
                        "resources": sorted(
                            {resource for rule in hook.get("rules", []) for resource in rule["resources"]}
                        ),
                        "namespaceSelector": hook.get("namespaceSelector", {}),
                        "objectSelector": hook.get("objectSelector", {}),
                    }
                )
    return found


def run(durations: Durations, work_dir: Path) -> dict[str, Any]:
    from e2e.cluster.controlplane import ControlPlane

    config = Config()
    label = config.workload_label
    plan = {1: 100, 10: 300} if durations.rounds == 1 else {1: 200, 10: 500}
    rounds = max(durations.rounds, 2)
    results: dict[str, Any] = {
        "clients": {},
        "version": kyverno.version(),
        "differences": kyverno.DIFFERENCES,
    }
    with ControlPlane() as plane:
        ours = plane.start_webhook()
        plane.apply_project_manifests(REPO_ROOT / "webhook" / "manifests", webhook=ours)
        ceiling = start_ceiling(plane, {})
        documents = [ceiling_configuration(plane, ceiling, "ceiling", "/mutate")]
        labels = {
            "ours": {"app.kubernetes.io/part-of": "kubeflow-profile"},
            "ceiling": {"kfext-bench": "ceiling"},
        } | {side: {kyverno.SELECT_LABEL: "true"} for side in KYVERNO_SIDES}
        for side, namespace in SIDES.items():
            documents += namespace_documents(namespace, labels.get(side, {}))
        documents += namespace_documents(TRIAL_JOB_NS, {kyverno.SELECT_LABEL: "true"})
        plane.kubectl.apply(documents)
        engine = kyverno.start(plane, work_dir)
        seen: set[tuple[str, str, str]] = set()
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=sample_sockets, args=(engine.pid, seen, stop_sampling))
        sampler.start()
        try:
            plane.kubectl.apply(
                [
                    *kyverno.policies(label, {s: SIDES[s] for s in KYVERNO_SIDES}),
                    kyverno.trial_job_policy(TRIAL_JOB_NS, label, config.service_account),
                ]
            )
            (apiserver,) = [p for p in plane.processes if p.name == "kube-apiserver"]
            assert apiserver.pid is not None
            assert ours.process is not None
            assert ceiling.process is not None
            assert ours.process.pid is not None
            assert ceiling.process.pid is not None
            pids = {"ours": ours.process.pid, "ceiling": ceiling.process.pid, "kyverno": engine.pid}
            creator = Creator(
                int(plane.server.rsplit(":", 1)[1]),
                admin_context(plane.kubeconfig, work_dir),
                {namespace: notebook_pod(namespace) for namespace in SIDES.values()},
            )
            wait_until_labelled(creator, label)
            results["trial_job"] = compare_trial_job(creator, label)
            results["webhooks"] = kyverno_webhooks(plane)
            progress("  every side labels its Pods; measuring")
            for namespace in SIDES.values():
                creator.batch(namespace, 10, 50)
            for clients, per_round in plan.items():
                latencies: dict[str, list[float]] = {side: [] for side in SIDES}
                elapsed = dict.fromkeys(SIDES, 0.0)
                cpu = {side: dict.fromkeys(["apiserver", *pids], 0.0) for side in SIDES}
                for round_index in range(rounds):
                    order = list(SIDES) if round_index % 2 == 0 else list(reversed(SIDES))
                    for side in order:
                        before = {"apiserver": cpu_seconds(apiserver.pid)} | {
                            n: cpu_seconds(p) for n, p in pids.items()
                        }
                        values, seconds = creator.batch(SIDES[side], clients, per_round)
                        after = {"apiserver": cpu_seconds(apiserver.pid)} | {
                            n: cpu_seconds(p) for n, p in pids.items()
                        }
                        latencies[side] += values
                        elapsed[side] += seconds
                        for name in after:
                            cpu[side][name] += after[name] - before[name]
                summaries = {side: stats.summary_ms(latencies[side]) for side in SIDES}
                base = summaries["none"]
                rows = {}
                for side in SIDES:
                    pods = len(latencies[side])
                    process = "kyverno" if side in KYVERNO_SIDES else side
                    rows[side] = {
                        "p50": summaries[side]["p50"],
                        "p99": summaries[side]["p99"],
                        "added_p50": summaries[side]["p50"] - base["p50"],
                        "added_p99": summaries[side]["p99"] - base["p99"],
                        "rate": pods / elapsed[side],
                        "pods": pods,
                        "apiserver_cpu_ms": cpu[side]["apiserver"] * 1000 / pods,
                        "webhook_cpu_ms": cpu[side][process] * 1000 / pods if process in pids else 0.0,
                    }
                results["clients"][clients] = rows
                progress(f"  kyverno comparison, {clients:2} clients: done")
            results["rss_mb"] = {name: memory_mb(pid) for name, pid in pids.items()}
        except Exception:
            progress(
                "  kyverno's log, last lines:\n" + "\n".join(engine.log_path.read_text().splitlines()[-40:])
            )
            raise
        finally:
            stop_sampling.set()
            sampler.join()
            engine.stop()
    results["sockets"] = sorted(seen)
    return results


def report(result: dict[str, Any]) -> str:
    headers = [
        "clients",
        "side",
        "p50 / p99 ms",
        "added p50 / p99 ms",
        "pods/s",
        "kube-apiserver CPU ms/Pod",
        "webhook process CPU ms/Pod",
    ]
    rows = []
    for clients, sides in result["clients"].items():
        for side, r in sides.items():
            rows.append(
                [
                    clients,
                    side if side not in KYVERNO_SIDES else f"kyverno {side}",
                    f"{r['p50']:.2f} / {r['p99']:.2f}",
                    f"{r['added_p50']:+.2f} / {r['added_p99']:+.2f}",
                    f"{r['rate']:.0f}",
                    f"{r['apiserver_cpu_ms']:.2f}",
                    f"{r['webhook_cpu_ms']:.2f}" if side != "none" else "",
                ]
            )
    rss = ", ".join(
        f"{name} {m['VmRSS']:.0f} MiB (peak {m['VmHWM']:.0f})" for name, m in result["rss_mb"].items()
    )
    outside = [
        f"{p} {local} -> {remote}"
        for p, local, remote in result["sockets"]
        if not is_loopback_only(local, remote)
    ]
    sockets = (
        "only loopback ("
        + ", ".join(f"{p} {local} -> {remote}" for p, local, remote in result["sockets"])
        + ")"
        if not outside
        else "NOT ONLY LOOPBACK: " + ", ".join(outside)
    )
    webhooks = "; ".join(
        f"{w['name']} at {w['url']}, {'/'.join(w['resources'])} in namespaces "
        + orjson.dumps(w["namespaceSelector"]).decode()
        + ", objects "
        + orjson.dumps(w["objectSelector"]).decode()
        for w in result["webhooks"]
    )
    trial = result["trial_job"]
    trial_line = (
        "the same Pod template as our webhook's"
        if trial["same"]
        else "a different Pod template: ours "
        + orjson.dumps(trial["ours"]).decode()
        + ", Kyverno's "
        + orjson.dumps(trial["kyverno"]).decode()
    )
    return (
        stats.table(headers, rows)
        + f"\n\nKyverno {result['version']}. RSS after the run: {rss}. Kyverno's sockets, sampled every "
        f"0.5 s through the run: {sockets}. Its webhooks: {webhooks}. The trial Job as a CEL "
        f"`MutatingPolicy` (not timed) gives {trial_line}. Differences from the chart's defaults: "
        + "; ".join(result["differences"])
        + "."
    )


def main() -> None:
    run_alone(__doc__, run, report)


if __name__ == "__main__":
    main()
