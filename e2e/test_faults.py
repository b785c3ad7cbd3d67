"""Faults on the local control plane: the webhook restarting under a stream of Pod creations, a webhook
process draining its in-flight requests on SIGTERM, and the hooks failing (5xx, hanging past
Metacontroller's timeout, refusing connections) without Metacontroller deleting any child.

Each test prints its figures (``faults:`` lines) to the terminal.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import kubernetes
import pytest

from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, LocalService, service_environment
from e2e.framework.manifests import localize_manifests
from e2e.framework.processes import ManagedProcess, eventually, free_port, wait_until
from e2e.framework.reporting import terminal_line
from e2e.framework.stubs import JsonHandler
from e2e.test_hooks import both_children, children, create_profile, header_value
from e2e.test_webhook import NAMESPACE, admission, container  # noqa: F401 (admission is a fixture)
from tests.webhook import katib_objects
from webhook.mutations import collector

pytestmark = pytest.mark.e2e

LABEL = "e2e-faults"


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A figure for the terminal, outside pytest's output capture."""
    terminal_line(request, f"faults: {line}")


# -- 1. the webhook restarting while Pods are created ------------------------------------------------


@dataclass
class Attempt:
    kind: str
    """``trial`` (trial-pods webhook) or ``notebook`` (notebook-pods webhook)."""
    began: float
    ended: float
    created: bool
    mutated: bool = False
    error: str = ""


def _pods(kind: str, number: int) -> dict[str, Any]:
    if kind == "trial":
        pod = katib_objects.trial_pod("v0.19", proxy="classic")
        pod["metadata"].pop("ownerReferences")
        pod["metadata"]["generateName"] = f"restart-trial-{number}-"
    else:
        pod = katib_objects.notebook_pod()
        pod["metadata"].pop("name")
        pod["metadata"]["generateName"] = f"restart-notebook-{number}-"
    pod["metadata"]["namespace"] = NAMESPACE
    pod["metadata"]["labels"][LABEL] = "restart"
    return pod


def _mutated(kind: str, stored: dict[str, Any]) -> bool:
    if kind == "trial":
        return collector.is_wrapper(container(stored, "metrics-logger-and-collector").get("command"))
    labels: dict[str, str] = stored["metadata"].get("labels", {})
    return labels.get("kubeflow-extension") == "true"


def _create_in_a_loop(core: Any, stop: threading.Event, attempts: list[Attempt]) -> None:
    number = 0
    while not stop.is_set() and number < 2000:
        kind = ("trial", "notebook")[number % 2]
        began = time.monotonic()
        try:
            response = core.create_namespaced_pod(
                NAMESPACE, _pods(kind, number), _preload_content=False, _request_timeout=20
            )
            stored = json.loads(response.data)
            attempts.append(Attempt(kind, began, time.monotonic(), True, _mutated(kind, stored)))
        except kubernetes.client.exceptions.ApiException as error:
            attempts.append(Attempt(kind, began, time.monotonic(), False, error=str(error.body)[:300]))
        number += 1
        time.sleep(0.02)  # a steady stream, without flooding two shared cores


@pytest.fixture(scope="module")
def core(control_plane: ControlPlane) -> Iterator[Any]:
    # kubernetes marks itself typed but leaves new_client_from_config unannotated.
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    yield kubernetes.client.CoreV1Api(client)
    client.close()


def test_webhook_restart_under_pod_creations_keeps_the_failure_policies(
    request: pytest.FixtureRequest,
    admission: list[dict[str, Any]],  # noqa: F811 (the fixture imported above)
    kubectl: Kubectl,
    webhook_server: LocalService,
    core: Any,
) -> None:
    (configuration,) = [d for d in admission if d["kind"] == "MutatingWebhookConfiguration"]
    policies = {w["name"].split(".")[0]: w["failurePolicy"] for w in configuration["webhooks"]}
    policy = {"trial": policies["trial-pods"], "notebook": policies["notebook-pods"]}
    assert policy == {"trial": "Fail", "notebook": "Ignore"}, (
        "the shipped policies changed: revisit this test"
    )

    attempts: list[Attempt] = []
    stop = threading.Event()
    creator = threading.Thread(target=_create_in_a_loop, args=(core, stop, attempts), daemon=True)
    creator.start()
    try:
        time.sleep(3)
        down = time.monotonic()
        webhook_server.stop()
        time.sleep(3)
        webhook_server.start()
        up = time.monotonic()  # /healthz answers from here on
        time.sleep(3)
    finally:
        stop.set()
        creator.join(30)
        with contextlib.suppress(Exception):
            kubectl.run("delete", "pods", "-n", NAMESPACE, "-l", f"{LABEL}=restart", "--wait=false")
    assert webhook_server.alive

    def phase(attempt: Attempt) -> str:
        # An attempt overlapping a transition is "down": the webhook may or may not have answered it.
        if attempt.ended < down:
            return "up"
        if attempt.began > up + 0.5:  # the API server's connection pool notices the new process
            return "up"
        return "down"

    figures: Counter[tuple[str, str, str]] = Counter()
    for attempt in attempts:
        outcome = "failed" if not attempt.created else "mutated" if attempt.mutated else "unmutated"
        figures[attempt.kind, phase(attempt), outcome] += 1
    summary = ", ".join(f"{k[0]}/{k[1]}/{k[2]}: {n}" for k, n in sorted(figures.items()))
    report(request, f"webhook restart: {len(attempts)} creations, {summary} (policies {policy})")

    trial_failed_while_up = [a for a in attempts if a.kind == "trial" and phase(a) == "up" and not a.created]
    assert not trial_failed_while_up, trial_failed_while_up[:3]
    assert figures["trial", "up", "unmutated"] == 0, (
        "a trial Pod created while the webhook was up is unmutated"
    )
    assert figures["trial", "down", "failed"] > 0, (
        "no trial Pod creation met the webhook down: test too short"
    )
    assert all("failed calling webhook" in a.error for a in attempts if not a.created and a.kind == "trial")
    # Ignore: never a failure; unmutated only while down.
    assert (
        sum(n for (kind, _, outcome), n in figures.items() if kind == "notebook" and outcome == "failed") == 0
    )
    assert figures["notebook", "up", "unmutated"] == 0
    assert figures["notebook", "down", "unmutated"] > 0, "no notebook met the webhook down: test too short"
    assert figures["trial", "up", "mutated"] > 0 and figures["notebook", "up", "mutated"] > 0


# -- 2. SIGTERM drains in-flight requests ----------------------------------------------------------------


def _webhook_process(control_plane: ControlPlane, name: str) -> tuple[ManagedProcess, int]:
    tls = control_plane.ca.issue_loopback_serving(name)
    port = free_port()
    process = ManagedProcess(
        name,
        [
            sys.executable,
            *("-m", "kubeflow_extension", "serve", "webhook", "--host", "127.0.0.1", "--port", str(port)),
            *("--certfile", str(tls.cert), "--keyfile", str(tls.key), "--log-format", "text"),
        ],
        control_plane.logs_dir / f"{name}.log",
        env=service_environment(),
        cwd=REPO_ROOT,
    )
    process.start()
    context = ssl.create_default_context(cafile=str(control_plane.ca.files.cert))

    def healthy() -> bool:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    wait_until(healthy, timeout=30, what=f"{name} /healthz", watch=[process])
    return process, port


@dataclass
class Sent:
    target: str
    """``A`` or ``B``: the process whose TLS handshake completed."""
    began: float
    """When the request's headers (and half its body) went out, just after the handshake."""
    ended: float = 0.0
    status: int = 0
    uid_ok: bool = False
    error: str = ""


def _slow_review(context: ssl.SSLContext, port: int, target: str, uid: str, pause: float) -> Sent:
    """One admission request on its own connection, its body sent in two halves ``pause`` seconds apart.

    Raises OSError if the TLS handshake fails (nothing accepted the connection); later failures are
    recorded in the result.
    """
    body = json.dumps(katib_objects.review(katib_objects.trial_pod("v0.19", kale="0.7"), uid=uid)).encode()
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=15)
    connection.connect()
    sent = Sent(target, time.monotonic())
    try:
        connection.putrequest("POST", "/mutate")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body[: len(body) // 2])
        time.sleep(pause)
        connection.send(body[len(body) // 2 :])
        response = connection.getresponse()
        answer = response.read()
        sent.status = response.status
        sent.uid_ok = json.loads(answer)["response"]["uid"] == uid
    except (OSError, http.client.HTTPException, ValueError) as error:
        sent.error = repr(error)
    finally:
        sent.ended = time.monotonic()
        connection.close()
    return sent


MARGIN = 0.25
"""A request whose headers went out this long before SIGTERM has surely been read by the server; one
sent closer to it may still sit unread in the socket, and the server closes such a connection."""


def test_sigterm_drains_in_flight_requests(
    request: pytest.FixtureRequest, control_plane: ControlPlane
) -> None:
    a, port_a = _webhook_process(control_plane, "webhook-drain-a")
    b, port_b = _webhook_process(control_plane, "webhook-drain-b")
    context = ssl.create_default_context(cafile=str(control_plane.ca.files.cert))
    results: list[Sent] = []
    refused_by_a: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    a_gone = threading.Event()

    def client(number: int) -> None:
        for sequence in range(100):
            if stop.is_set():
                return
            uid = f"drain-{number}-{sequence}"
            pause = 0.4 + 0.1 * (number % 4)
            if not a_gone.is_set():
                try:
                    sent = _slow_review(context, port_a, "A", uid, pause)
                except OSError as error:  # the handshake with A failed: A no longer accepts connections
                    with lock:
                        refused_by_a.append(repr(error))
                    a_gone.set()
                else:
                    with lock:
                        results.append(sent)
                    if sent.status == 200:
                        continue
                    # Not answered by A: a client (the API server) tries again, on a new connection.
            with lock:
                results.append(_slow_review(context, port_b, "B", uid, pause))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(6)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        sigterm = time.monotonic()
        assert a.pid is not None
        os.kill(a.pid, signal.SIGTERM)
        wait_until(lambda: not a.alive, timeout=20, what="process A to exit after SIGTERM")
        exited = time.monotonic()
        time.sleep(1.5)  # new requests now go to B
        stop.set()
        for thread in threads:
            thread.join(20)
    finally:
        a.stop()
        b.stop()
    by_a = [s for s in results if s.target == "A"]
    in_flight = [s for s in by_a if s.began <= sigterm - MARGIN and s.ended >= sigterm]
    accepted = [s for s in by_a if s.began <= sigterm - MARGIN]
    failed = [s for s in accepted if s.status != 200 or not s.uid_ok]
    unread = [s for s in by_a if s.began > sigterm - MARGIN and s.status != 200]
    by_b = [s for s in results if s.target == "B"]
    report(
        request,
        f"SIGTERM drain: A answered {sum(s.status == 200 for s in by_a)} requests, {len(in_flight)} of them "
        f"in flight at SIGTERM, {len(failed)} accepted requests failed; A exited {a.returncode} "
        f"{exited - sigterm:.2f} s after SIGTERM; {len(unread)} sent in its last {MARGIN} s closed "
        f"unanswered and {len(refused_by_a)} new connections refused, all retried on B, which answered "
        f"{sum(s.status == 200 for s in by_b)}/{len(by_b)}",
    )
    # uvicorn re-raises the signal once it has shut down gracefully, so A ends "killed" by its SIGTERM.
    assert a.returncode in (0, -signal.SIGTERM), a.tail()
    assert "Finished server process" in a.tail(), a.tail()
    assert in_flight, "no request was in flight at SIGTERM: test too short"
    assert not failed, failed[:3]
    assert all(s.status == 200 for s in by_a if s.began <= sigterm), "a request read before SIGTERM failed"
    assert by_b and all(s.status == 200 and s.uid_ok for s in by_b), [s for s in by_b if s.status != 200][:3]
    assert refused_by_a, "no client found A gone"


# -- 3. the hooks failing never makes Metacontroller delete a child --------------------------------------


class _FaultyHooks(JsonHandler):
    """Stands in for the hooks: answers 500, or hangs past Metacontroller's timeout, by ``mode``."""

    mode = "500"
    calls: Counter[str] = Counter()
    release = threading.Event()

    def do_POST(self) -> None:
        self.read_json()
        type(self).calls[self.mode] += 1
        if self.mode == "hang":
            self.release.wait(14)  # Metacontroller gives up after 10 s (the shipped `timeout: 10s`)
        with contextlib.suppress(OSError):
            self.answer(500, {"error": "injected fault", "status": 500})


def _point_controller_at(control_plane: ControlPlane, kubectl: Kubectl, url: str) -> None:
    documents = localize_manifests(kubectl.kustomize(REPO_ROOT / "metacontroller"), hooks_url=url)
    kubectl.apply([d for d in documents if d["kind"] == "DecoratorController"])


def test_failing_hooks_never_make_metacontroller_delete_a_child(
    request: pytest.FixtureRequest, control_plane: ControlPlane, kubectl: Kubectl, hooks_server: LocalService
) -> None:
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}])
    control_plane.apply_project_manifests(REPO_ROOT / "metacontroller", hooks=hooks_server)
    name = "e2e-faults"
    create_profile(kubectl, name, "before@example.com")
    before = eventually(lambda: both_children(kubectl, name), what="both children", timeout=90)
    uids = [child["metadata"]["uid"] for child in before]
    _FaultyHooks.calls = Counter()
    _FaultyHooks.release = threading.Event()

    stub = ThreadingHTTPServer(("127.0.0.1", 0), _FaultyHooks)
    stub.daemon_threads = True
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    stub_url = f"http://127.0.0.1:{stub.server_address[1]}"
    checks = 0
    changes: list[str] = []

    def watch(seconds: float) -> None:
        """Poll both children for ``seconds``: every change of UID, absence or deletion is counted."""
        nonlocal checks
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = children(kubectl, name)
            checks += 1
            for child, uid in zip(now, uids, strict=True):
                if (
                    child is None
                    or child["metadata"]["uid"] != uid
                    or child["metadata"].get("deletionTimestamp")
                ):
                    changes.append(f"{uid}: {'gone' if child is None else child['metadata']}")
            time.sleep(0.5)

    def touch(value: str) -> None:
        """An event on the parent, so Metacontroller syncs now rather than at the next resync."""
        kubectl.run("label", "namespace", name, f"e2e-faults-touch={value}", "--overwrite")

    try:
        _FaultyHooks.mode = "500"
        _point_controller_at(control_plane, kubectl, stub_url)
        kubectl.run(
            "patch", "profile", name, "--type=merge", "-p", '{"spec":{"owner":{"name":"after@example.com"}}}'
        )
        touch("500")
        wait_until(lambda: _FaultyHooks.calls["500"] >= 2, timeout=30, what="hook calls answered 500")
        watch(4)

        _FaultyHooks.mode = "hang"
        touch("hang")
        wait_until(lambda: _FaultyHooks.calls["hang"] >= 1, timeout=30, what="a hook call to hang")
        watch(12)  # past the 10 s timeout of the hung call

        _FaultyHooks.mode = "refused"
        _FaultyHooks.release.set()
        stub.shutdown()
        stub.server_close()
        touch("refused")
        watch(5)
    finally:
        _FaultyHooks.release.set()
        with contextlib.suppress(Exception):
            stub.shutdown()
        stub.server_close()
        _point_controller_at(control_plane, kubectl, hooks_server.url)

    # Back on the real hooks: the owner change made during the faults is reconciled, in place.
    def reconciled() -> tuple[Any, Any] | None:
        policy, envoy_filter = children(kubectl, name)
        if policy is None or envoy_filter is None:
            return None
        owner_in_policy = policy["spec"]["rules"][0]["when"][0]["values"] == ["after@example.com"]
        return (
            (policy, envoy_filter)
            if owner_in_policy and header_value(envoy_filter) == "after@example.com"
            else None
        )

    try:
        restored = eventually(
            reconciled, what="the owner change to be reconciled once the hooks answer again", timeout=120
        )
    finally:
        kubectl.run("delete", "profile", name, "--wait=false", check=False)
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)
    report(
        request,
        f"hooks faults: calls answered 500: {_FaultyHooks.calls['500']}, hung past the timeout: "
        f"{_FaultyHooks.calls['hang']}, then connection refused; {checks} checks of both children, "
        f"{len(changes)} deletions or replacements; reconciled in place after restore",
    )
    assert not changes, changes[:3]
    assert [child["metadata"]["uid"] for child in restored] == uids
