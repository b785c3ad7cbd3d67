"""``create pod`` through a real kube-apiserver (local control plane), with and without our webhook.

The project's ``webhook/manifests`` are applied, localized to a local ``webhook.app:app`` served over
HTTPS. Two namespaces: one labelled as a profile (``app.kubernetes.io/part-of: kubeflow-profile``),
which the webhook configuration selects, and one that is not; both have the ``default-editor``
ServiceAccount. The same Katib trial Pod (~20 KiB, with the collector, so the trial-pods webhook
matches) is created in both, alternating batches, at 1 and at 10 concurrent clients, over raw HTTPS
keep-alive connections with the admin client certificate.

``python -m bench.pod_creation [--quick]``
"""

from __future__ import annotations

import base64
import functools
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench import stats
from bench.bodies import trial_pod_object
from bench.client import Connection, run_on_connections
from bench.common import Durations, progress, run_alone
from bench.procs import HOST, REPO_ROOT
from service.config import Config
from webhook.mutate import run as run_mutations

PROFILE_NS = "bench-profile"
PLAIN_NS = "bench-plain"
CEILING_NS = "bench-ceiling"
PATCHED_NS = "bench-ceiling-patch"
SIDES = {PLAIN_NS: "without", PROFILE_NS: "with", CEILING_NS: "ceiling", PATCHED_NS: "patched"}
"""No webhook; our webhook; the same webhook configuration pointed at ``bench.ceiling:app``; and at its
``/mutate-with-patch``, which sends our webhook's patch for this Pod without computing anything."""
MARKER = b"kubeflow-extension: Katib metrics collector"


def admin_context(kubeconfig: Path, work_dir: Path) -> ssl.SSLContext:
    """TLS context with the kubeconfig's CA and admin client certificate."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    files = {}
    for name, data in (
        ("ca.crt", cluster["certificate-authority-data"]),
        ("admin.crt", user["client-certificate-data"]),
        ("admin.key", user["client-key-data"]),
    ):
        files[name] = work_dir / name
        files[name].write_bytes(base64.b64decode(data))
    context = ssl.create_default_context(cafile=str(files["ca.crt"]))
    context.load_cert_chain(str(files["admin.crt"]), str(files["admin.key"]))
    return context


def pod_body(namespace: str, size: int = 20 * 1024) -> bytes:
    pod = trial_pod_object(size)
    # No owner: the garbage collector would delete Pods whose Job does not exist, adding load.
    pod["metadata"].pop("ownerReferences", None)
    pod["metadata"]["namespace"] = namespace
    return orjson.dumps(pod)


class Creator:
    """Creates Pods through kube-apiserver: one body per namespace, sent as is."""

    def __init__(self, port: int, context: ssl.SSLContext, bodies: dict[str, bytes]) -> None:
        self.port, self.context, self.bodies = port, context, bodies

    def connection(self) -> Connection:
        return Connection(HOST, self.port, self.context, timeout=30)

    def create(self, connection: Connection, namespace: str) -> bytes:
        status, answer = connection.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", self.bodies[namespace]
        )
        if status != 201:
            raise RuntimeError(f"create pod in {namespace}: {status} {answer[:300]!r}")
        return answer

    def batch(self, namespace: str, clients: int, total: int) -> tuple[list[float], float]:
        """``total`` creations shared by ``clients`` threads, each on its own connection."""
        latencies: list[float] = []
        lock = threading.Lock()
        connections = [self.connection() for _ in range(clients)]
        for connection in connections:
            connection.connect()

        def client(connection: Connection, count: int) -> None:
            mine = []
            for _ in range(count):
                start = time.perf_counter()
                self.create(connection, namespace)
                mine.append(time.perf_counter() - start)
            with lock:
                latencies.extend(mine)

        workers = [
            functools.partial(client, c, total // clients + (i < total % clients))
            for i, c in enumerate(connections)
        ]
        return latencies, run_on_connections(workers, connections)


def our_patch(body: bytes) -> list[dict[str, Any]]:
    """What our webhook answers for this Pod, as JSON Patch operations."""
    return [dict(op) for op in run_mutations(orjson.loads(body), "Pod", Config()).ops]


def start_ceiling(plane: Any, patches: dict[str, list[dict[str, Any]]]) -> Any:
    """``bench.ceiling:app`` over HTTPS; ``/patch/<name>`` answers with ``patches[name]``."""
    encoded = {name: base64.b64encode(orjson.dumps(ops)).decode() for name, ops in patches.items()}
    return plane.start_service(
        "ceiling", "bench.ceiling:app", tls=True, env={"CEILING_PATCHES": orjson.dumps(encoded).decode()}
    )


def ceiling_configuration(plane: Any, ceiling: Any, name: str, path: str) -> dict[str, Any]:
    """A copy of our webhook configuration sending the reviews of namespaces labelled
    ``kfext-bench: <name>`` to the ceiling's ``path``: its header-mode webhooks, which a profile namespace
    without the identity label reaches (the token-mode twins would review the same objects again)."""
    manifests = REPO_ROOT / "webhook" / "manifests"
    (configuration,) = [
        d
        for d in plane.localized_manifests(manifests, webhook=ceiling)
        if d["kind"] == "MutatingWebhookConfiguration"
    ]
    assert isinstance(configuration, dict)
    configuration["metadata"] = {"name": f"kfext-bench-{name}"}
    configuration["webhooks"] = [
        h for h in configuration["webhooks"] if h["clientConfig"]["url"].endswith("/mutate")
    ]
    for hook in configuration["webhooks"]:
        hook["namespaceSelector"] = {"matchLabels": {"kfext-bench": name}}
        hook["clientConfig"]["url"] = hook["clientConfig"]["url"].replace("/mutate", path)
    return configuration


def namespace_documents(name: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """A namespace and the ``default-editor`` ServiceAccount the trial Pod runs as."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default-editor", "namespace": name},
        },
    ]


def setup(plane: Any) -> Any:
    """Our webhook for the profile namespace; a copy of its configuration, selecting only the ceiling's
    namespace, sends the same reviews to ``bench.ceiling:app`` (what TLS, HTTP and the API server's own
    webhook handling cost with nothing done)."""
    manifests = REPO_ROOT / "webhook" / "manifests"
    webhook = plane.start_webhook()
    plane.apply_project_manifests(manifests, webhook=webhook)
    ceiling = start_ceiling(plane, {"ours": our_patch(pod_body(PATCHED_NS))})
    documents = [
        ceiling_configuration(plane, ceiling, "ceiling", "/mutate"),
        ceiling_configuration(plane, ceiling, "patch", "/patch/ours"),
    ]
    namespaces: tuple[tuple[str, dict[str, str]], ...] = (
        (PROFILE_NS, {"app.kubernetes.io/part-of": "kubeflow-profile"}),
        (PLAIN_NS, {}),
        (CEILING_NS, {"kfext-bench": "ceiling"}),
        (PATCHED_NS, {"kfext-bench": "patch"}),
    )
    for name, labels in namespaces:
        documents += namespace_documents(name, labels)
    plane.kubectl.apply(documents)
    return webhook


def wait_until_mutating(creator: Creator, timeout: float = 60.0) -> None:
    """The API server calls webhooks once its informer has the configuration: wait for a mutated Pod."""
    connection = creator.connection()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if MARKER in creator.create(connection, PROFILE_NS):
            if MARKER in creator.create(connection, PLAIN_NS):
                raise RuntimeError("a Pod outside the profile namespaces was mutated")
            connection.close()
            return
        time.sleep(0.5)
    raise RuntimeError("the webhook never mutated a trial Pod")


def webhook_calls(webhook: Any) -> float:
    connection = Connection(HOST, webhook.port, ssl.create_default_context(cafile=str(webhook.ca_file)))
    _, text = connection.request("GET", "/metrics")
    connection.close()
    return stats.histogram(text.decode(), "kfext_webhook_request_duration_seconds").get(float("inf"), 0.0)


def run(durations: Durations, work_dir: Path) -> dict[str, Any]:
    from e2e.cluster.controlplane import ControlPlane

    plan = {1: 100, 10: 300} if durations.rounds == 1 else {1: 250, 10: 600}
    results: dict[str, Any] = {"clients": {}}
    with ControlPlane() as plane:
        webhook = setup(plane)
        creator = Creator(
            int(plane.server.rsplit(":", 1)[1]),
            admin_context(plane.kubeconfig, work_dir),
            {ns: pod_body(ns) for ns in SIDES},
        )
        wait_until_mutating(creator)
        for namespace in SIDES:  # warm every path (connections, caches)
            creator.batch(namespace, 10, 50)
        rounds = max(durations.rounds, 2)
        calls_before = webhook_calls(webhook)
        profile_pods = 0
        for clients, per_round in plan.items():
            latencies: dict[str, list[float]] = {namespace: [] for namespace in SIDES}
            elapsed = dict.fromkeys(latencies, 0.0)
            for round_index in range(rounds):
                order = list(SIDES) if round_index % 2 == 0 else list(reversed(SIDES))
                for namespace in order:
                    values, seconds = creator.batch(namespace, clients, per_round)
                    latencies[namespace] += values
                    elapsed[namespace] += seconds
            profile_pods += per_round * rounds
            sides = {
                side: stats.summary_ms(latencies[ns]) | {"rate": len(latencies[ns]) / elapsed[ns]}
                for ns, side in SIDES.items()
            }
            with_hook, without, ceiling = sides["with"], sides["without"], sides["ceiling"]
            patched = sides["patched"]
            results["clients"][clients] = sides | {
                "added_p50": with_hook["p50"] - without["p50"],
                "added_p99": with_hook["p99"] - without["p99"],
                "ceiling_added_p50": ceiling["p50"] - without["p50"],
                "ceiling_added_p99": ceiling["p99"] - without["p99"],
                "patched_added_p50": patched["p50"] - without["p50"],
                "patched_added_p99": patched["p99"] - without["p99"],
            }
            progress(
                f"  create pod, {clients:2} clients: p50 {without['p50']:.1f} -> {with_hook['p50']:.1f} ms, "
                f"p99 {without['p99']:.1f} -> {with_hook['p99']:.1f} ms (ceiling {ceiling['p50']:.1f} / "
                f"{ceiling['p99']:.1f} ms)"
            )
        results["webhook_calls"] = webhook_calls(webhook) - calls_before
        results["profile_pods"] = profile_pods
    return results


def report(result: dict[str, Any]) -> str:
    rows = []
    for clients, r in result["clients"].items():
        rows.append(
            [
                clients,
                r["without"]["count"],
                f"{r['without']['p50']:.2f} / {r['with']['p50']:.2f} / {r['ceiling']['p50']:.2f}",
                f"{r['added_p50']:+.2f} / {r['ceiling_added_p50']:+.2f} / {r['patched_added_p50']:+.2f}",
                f"{r['without']['p99']:.2f} / {r['with']['p99']:.2f} / {r['ceiling']['p99']:.2f}",
                f"{r['added_p99']:+.2f} / {r['ceiling_added_p99']:+.2f} / {r['patched_added_p99']:+.2f}",
                f"{r['without']['rate']:.0f} / {r['with']['rate']:.0f} / {r['ceiling']['rate']:.0f}",
            ]
        )
    headers = [
        "clients",
        "pods per side",
        "p50 ms: none / webhook / ceiling",
        "added p50: webhook / ceiling / ceiling+patch",
        "p99 ms: none / webhook / ceiling",
        "added p99: webhook / ceiling / ceiling+patch",
        "pods/s: none / webhook / ceiling",
    ]
    return stats.table(headers, rows)


def main() -> None:
    run_alone(
        __doc__,
        run,
        report,
        lambda r: f"webhook calls: {r['webhook_calls']:.0f} for {r['profile_pods']} profile Pods",
    )


if __name__ == "__main__":
    main()
