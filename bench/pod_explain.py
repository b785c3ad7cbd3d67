"""Where kube-apiserver spends the latency a mutating webhook adds to ``create pod``: one hypothesis per side.

Every side is a namespace selected by its own copy of our webhook configuration, pointed at the ceiling
(``bench.ceiling:app``), which answers a fixed patch or none, so nothing is computed per review and the
differences between sides are kube-apiserver's. Sides run alternated in one run, at 1 and 10 clients.
Per side: client latency, kube-apiserver CPU per Pod (``/proc``), and the deltas of its own admission
metrics per Pod (time in mutating webhooks, in its in-tree admission plugins, webhook calls). Then a CPU
profile of kube-apiserver (``/debug/pprof/profile``) while creating Pods on two sides, for ``go tool pprof``.

``python -m bench.pod_explain [--quick] [--profiles DIR] [--sides A,B] [--rounds N] [--clients 1,10]``
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import stats
from bench.client import Connection
from bench.common import Durations, progress
from bench.pod_creation import (
    Creator,
    admin_context,
    ceiling_configuration,
    namespace_documents,
    our_patch,
    pod_body,
    start_ceiling,
)
from bench.procs import HOST, cpu_seconds
from service.config import Config
from webhook.mutate import run as run_mutations

SMALL = 5 * 1024
LARGE = 20 * 1024
Hooks = list[dict[str, Any]]


def _never(hooks: Hooks) -> Hooks:
    for hook in hooks:
        hook["reinvocationPolicy"] = "Never"
    return hooks


def _no_match_conditions(hooks: Hooks) -> Hooks:
    for hook in hooks:
        hook.pop("matchConditions", None)
    return hooks


def _trial_pods_only(hooks: Hooks) -> Hooks:
    (trial_pods,) = [h for h in hooks if h["name"].startswith("trial-pods.")]
    return [trial_pods]


def _trial_pods_only_unconditional(hooks: Hooks) -> Hooks:
    return _no_match_conditions(_trial_pods_only(hooks))


@dataclass(frozen=True)
class Side:
    name: str
    hypothesis: str
    size: int = LARGE
    path: str | None = None
    """The ceiling's path; None: no webhook selects the namespace."""
    webhooks: Callable[[Hooks], Hooks] | None = None

    @property
    def namespace(self) -> str:
        return f"explain-{self.name}"


SIDES = (
    Side("none", "no webhook"),
    Side("ceiling", "bare ceiling, our configuration (matchConditions, objectSelector)", path="/mutate"),
    Side(
        "unconditional",
        "bare ceiling, only the trial-pods webhook, no matchConditions",
        path="/mutate",
        webhooks=_trial_pods_only_unconditional,
    ),
    Side(
        "no-conditions",
        "bare ceiling, our three webhooks without matchConditions",
        path="/mutate",
        webhooks=_no_match_conditions,
    ),
    Side(
        "trial-pods-only",
        "bare ceiling, only the trial-pods webhook, with its matchConditions",
        path="/mutate",
        webhooks=_trial_pods_only,
    ),
    Side("patch", "our patch for this Pod (3 ops)", path="/patch/ours-large"),
    Side("patch-never", "our patch, reinvocationPolicy Never", path="/patch/ours-large", webhooks=_never),
    Side("replace", "same result as one replace per changed container", path="/patch/replace"),
    Side("label", "one small add (a label): any change at all", path="/patch/label"),
    Side("test", "a patch that changes nothing (one test op)", path="/patch/test"),
    Side("small-none", "5 KiB Pod, no webhook", size=SMALL),
    Side("small-ceiling", "5 KiB Pod, bare ceiling", size=SMALL, path="/mutate"),
    Side("small-patch", "5 KiB Pod, our patch for it", size=SMALL, path="/patch/ours-small"),
)
PROFILED = ("ceiling", "no-conditions", "patch")


def patches() -> dict[str, list[dict[str, Any]]]:
    """The fixed answers: ours for each size, the same change as whole-container replaces, a label, a
    no-op."""
    large = orjson.loads(pod_body("explain", LARGE))
    mutated = run_mutations(large, "Pod", Config()).obj
    replace = [
        {"op": "replace", "path": f"/spec/containers/{index}", "value": after}
        for index, (before, after) in enumerate(
            zip(large["spec"]["containers"], mutated["spec"]["containers"], strict=True)
        )
        if before != after
    ]
    return {
        "ours-large": our_patch(pod_body("explain", LARGE)),
        "ours-small": our_patch(pod_body("explain", SMALL)),
        "replace": replace,
        "label": [{"op": "add", "path": "/metadata/labels/kfext-bench-mutated", "value": "true"}],
        "test": [{"op": "test", "path": "/kind", "value": "Pod"}],
    }


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for match in _SAMPLE.finditer(text):
        if match["name"] != name:
            continue
        have = dict(_LABEL.findall(match["labels"] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match["value"])
    return total


ADMISSION_FIGURES = {
    # name: (metric, labels, scale to ms per Pod or calls per Pod)
    "webhook_ms": ("apiserver_admission_webhook_admission_duration_seconds_sum", {"type": "admit"}, 1000),
    "webhook_calls": ("apiserver_admission_webhook_admission_duration_seconds_count", {"type": "admit"}, 1),
    "plugins_ms": ("apiserver_admission_controller_admission_duration_seconds_sum", {"type": "admit"}, 1000),
    "plugin_calls": ("apiserver_admission_controller_admission_duration_seconds_count", {"type": "admit"}, 1),
    "admit_step_ms": ("apiserver_admission_step_admission_duration_seconds_sum", {"type": "admit"}, 1000),
    "validate_step_ms": (
        "apiserver_admission_step_admission_duration_seconds_sum",
        {"type": "validate"},
        1000,
    ),
    "request_ms": (
        "apiserver_request_duration_seconds_sum",
        {"verb": "POST", "resource": "pods", "subresource": ""},
        1000,
    ),
}


class Apiserver:
    """kube-apiserver's own view: its metrics, its CPU time, a CPU profile."""

    def __init__(self, creator: Creator, pid: int) -> None:
        self.creator, self.pid = creator, pid

    def get(self, path: str, timeout: float = 30) -> bytes:
        connection = Connection(HOST, self.creator.port, self.creator.context, timeout=timeout)
        status, body = connection.request("GET", path)
        connection.close()
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return body

    def figures(self) -> dict[str, float]:
        text = self.get("/metrics").decode()
        return {
            name: metric_sum(text, metric, **labels)
            for name, (metric, labels, _) in ADMISSION_FIGURES.items()
        }


def measure(creator: Creator, apiserver: Apiserver, side: Side, clients: int, count: int) -> dict[str, Any]:
    before = apiserver.figures()
    cpu = cpu_seconds(apiserver.pid)
    latencies, seconds = creator.batch(side.namespace, clients, count)
    cpu = cpu_seconds(apiserver.pid) - cpu
    after = apiserver.figures()
    return {
        "latencies": latencies,
        "seconds": seconds,
        "cpu": cpu,
        **{name: after[name] - before[name] for name in ADMISSION_FIGURES},
    }


def profile(creator: Creator, apiserver: Apiserver, side: Side, seconds: int, into: Path) -> int:
    """A CPU profile of kube-apiserver while 10 clients create Pods on ``side``; the Pods created."""
    result: dict[str, bytes] = {}

    def take() -> None:
        result["profile"] = apiserver.get(f"/debug/pprof/profile?seconds={seconds}", timeout=seconds + 60)

    thread = threading.Thread(target=take)
    thread.start()
    pods = 0
    while thread.is_alive():
        creator.batch(side.namespace, 10, 100)
        pods += 100
    thread.join()
    into.write_bytes(result["profile"])
    return pods


def run(
    durations: Durations,
    work_dir: Path,
    profiles: Path | None = None,
    sides: tuple[Side, ...] = SIDES,
    rounds: int = 2,
    concurrency: tuple[int, ...] = (1, 10),
) -> dict[str, Any]:
    """Every side at each number of clients in ``concurrency``, ``rounds`` times alternating; then the
    profiled sides among them."""
    from e2e.cluster.controlplane import ControlPlane

    quick = durations.rounds == 1
    pods_per_round = {1: 60, 10: 150} if quick else {1: 150, 10: 300}
    plan = {clients: pods_per_round.get(clients, pods_per_round[10]) for clients in concurrency}
    results: dict[str, Any] = {"clients": {}, "sides": {s.name: s.hypothesis for s in sides}, "profiles": {}}
    with ControlPlane(profiling=True) as plane:
        ceiling = start_ceiling(plane, patches())
        documents: list[dict[str, Any]] = []
        for side in sides:
            labels: dict[str, str] = {}
            if side.path is not None:
                labels = {"kfext-bench": side.name}
                configuration = ceiling_configuration(plane, ceiling, side.name, side.path)
                if side.webhooks is not None:
                    configuration["webhooks"] = side.webhooks(configuration["webhooks"])
                documents.append(configuration)
            documents += namespace_documents(side.namespace, labels)
        plane.kubectl.apply(documents)
        (apiserver_process,) = [p for p in plane.processes if p.name == "kube-apiserver"]
        creator = Creator(
            int(plane.server.rsplit(":", 1)[1]),
            admin_context(plane.kubeconfig, work_dir),
            {side.namespace: pod_body(side.namespace, side.size) for side in sides},
        )
        assert apiserver_process.pid is not None
        apiserver = Apiserver(creator, apiserver_process.pid)
        time.sleep(3)  # the API server's informer picks up the new webhook configurations
        for side in sides:
            creator.batch(side.namespace, 10, 50)
        for clients, per_round in plan.items():
            totals: dict[str, dict[str, Any]] = {}
            for round_index in range(rounds):
                order = sides if round_index % 2 == 0 else tuple(reversed(sides))
                for side in order:
                    figures = measure(creator, apiserver, side, clients, per_round)
                    total = totals.setdefault(side.name, {"latencies": []})
                    total["latencies"] += figures.pop("latencies")
                    for name, value in figures.items():
                        total[name] = total.get(name, 0.0) + value
            base = stats.summary_ms(totals["none"]["latencies"])
            rows = {}
            for side in sides:
                total = totals[side.name]
                pods = len(total["latencies"])
                summary = stats.summary_ms(total["latencies"])
                reference = (
                    stats.summary_ms(totals["small-none"]["latencies"]) if side.size == SMALL else base
                )
                rows[side.name] = {
                    "p50": summary["p50"],
                    "p99": summary["p99"],
                    "added_p50": summary["p50"] - reference["p50"],
                    "added_p99": summary["p99"] - reference["p99"],
                    "rate": pods / total["seconds"],
                    "cpu_ms": total["cpu"] * 1000 / pods,
                    **{
                        name: total[name] * scale / pods
                        for name, (_, _, scale) in ADMISSION_FIGURES.items()
                        if name != "request_ms"
                    },
                    "request_ms": total["request_ms"] * 1000 / pods,
                    "pods": pods,
                }
            results["clients"][clients] = rows
            progress(f"  explain, {clients:2} clients: done")
        seconds = 8 if quick else 15
        for side in (s for s in sides if s.name in PROFILED):
            name = side.name
            path = work_dir / f"kube-apiserver-{name}.pprof"
            pods = profile(creator, apiserver, side, seconds, path)
            results["profiles"][name] = {"pods": pods, "seconds": seconds}
            if profiles is not None:
                profiles.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, profiles / path.name)
            progress(f"  profile of kube-apiserver, {name}: {pods} Pods in {seconds} s")
    return results


def report(result: dict[str, Any]) -> str:
    headers = [
        "clients",
        "side",
        "added p50 / p99 ms",
        "pods/s",
        "apiserver CPU ms/Pod",
        "in webhooks ms/Pod",
        "in-tree admit ms/Pod (calls)",
        "admit step ms/Pod",
        "webhook calls/Pod",
    ]
    rows = []
    for clients, sides in result["clients"].items():
        for name, r in sides.items():
            rows.append(
                [
                    clients,
                    name,
                    f"{r['added_p50']:+.2f} / {r['added_p99']:+.2f}",
                    f"{r['rate']:.0f}",
                    f"{r['cpu_ms']:.2f}",
                    f"{r['webhook_ms']:.2f}",
                    f"{r['plugins_ms']:.2f} ({r['plugin_calls']:.1f})",
                    f"{r['admit_step_ms']:.2f}",
                    f"{r['webhook_calls']:.2f}",
                ]
            )
    sides = "\n".join(f"- {name}: {text}" for name, text in result["sides"].items())
    return stats.table(headers, rows) + "\n\n" + sides


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profiles", type=Path, help="keep kube-apiserver's CPU profiles here")
    parser.add_argument(
        "--sides",
        help="side names, comma-separated, run in that order (default all; their no-webhook baselines added)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per number of clients")
    parser.add_argument("--clients", default="1,10", help="comma-separated numbers of concurrent clients")
    arguments = parser.parse_args()
    sides: tuple[Side, ...] = SIDES
    if arguments.sides:
        by_name = {s.name: s for s in SIDES}
        wanted = ["none", *arguments.sides.split(",")]
        if any(by_name[name].size == SMALL for name in wanted if name in by_name):
            wanted.insert(1, "small-none")
        unknown = set(wanted) - by_name.keys()
        if unknown:
            parser.error(f"unknown sides: {', '.join(sorted(unknown))}")
        sides = tuple(by_name[name] for name in dict.fromkeys(wanted))  # in the order given
    concurrency = tuple(int(clients) for clients in arguments.clients.split(","))
    with tempfile.TemporaryDirectory(prefix="kfext-bench-") as work:
        result = run(
            Durations.pick(arguments.quick),
            Path(work),
            arguments.profiles,
            sides,
            arguments.rounds,
            concurrency,
        )
    print(report(result))
    print(orjson.dumps(result["clients"], option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
