"""A loopback stand-in for the ml-pipeline REST API and the few Kubernetes calls a Kale trial makes.

It speaks the paths the kfp clients Kale runs with use to create and follow a run: KFP v1
(``/apis/v1beta1``: healthz, experiments, pipelines, pipeline versions, runs; kfp 1.x) and v2
(``/apis/v2beta1``: the same for kfp 2.x), plus the Katib Trial get/patch and Argo Workflow patch that
Kale's ``create_and_wait_kfp_run`` sends to the Kubernetes API. Point kfp at it with
``KF_PIPELINES_ENDPOINT`` and the kubernetes client with a kubeconfig naming it (``kubeconfig()``).

Faults are planned per route and served in order before normal answers: ``"drop"`` closes the connection
without an answer, a number answers with that HTTP status. Every request is recorded, with the answer.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from e2e.framework.stubs import JsonHandler

Fault = str | int
"""``"drop"`` or an HTTP status."""

NAMESPACE = "kubeflow-user-example-com"
PIPELINE_ID = "3f2c1b7e-52a1-4c4e-9b0a-6a7c58e1d2f4"
VERSION_ID = "8d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
RUN_ID = "5e1f9c2a-7b3d-4e8f-9a0b-1c2d3e4f5a6b"
WORKFLOW = "kale-pipeline-x7k2p"
METRIC = ("accuracy", 0.93)

_TRIAL = r"/apis/kubeflow\.org/(?P<version>v1\w+)/namespaces/(?P<ns>[^/]+)/trials/(?P<name>[^/]+)"
ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (name, method, re.compile(pattern))
    for name, method, pattern in (
        ("healthz", "GET", r"/apis/v(1|2)beta1/healthz"),
        ("list_experiments", "GET", r"/apis/v(1|2)beta1/experiments"),
        ("create_experiment", "POST", r"/apis/v(1|2)beta1/experiments"),
        ("get_pipeline", "GET", r"/apis/v(1|2)beta1/pipelines/[^/]+"),
        ("get_pipeline_version", "GET", r"/apis/v1beta1/pipeline_versions/[^/]+"),
        ("get_pipeline_version", "GET", r"/apis/v2beta1/pipelines/[^/]+/versions/[^/]+"),
        ("create_run", "POST", r"/apis/v(1|2)beta1/runs"),
        ("get_run", "GET", r"/apis/v(1|2)beta1/runs/(?P<run>[^/:]+)"),
        ("get_trial", "GET", _TRIAL),
        ("patch_trial", "PATCH", _TRIAL),
        ("patch_workflow", "PATCH", r"/apis/argoproj\.io/v1alpha1/namespaces/[^/]+/workflows/[^/]+"),
    )
)


@dataclass
class Request:
    route: str
    method: str
    path: str
    answer: Fault
    authorization: str | None = None
    """The ``Authorization`` header, as sent."""
    userid: str | None = None
    """The ``kubeflow-userid`` header, as sent."""


@dataclass
class MlPipelineStandIn:
    """The server's state: planned faults by route, and what it was asked."""

    faults: dict[str, list[Fault]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, route: str, faults: Iterable[Fault]) -> None:
        with self.lock:
            self.faults[route] = list(faults)

    def answered(self, route: str) -> list[Fault]:
        """The answers given on a route, in order (HTTP statuses, or ``"drop"``)."""
        with self.lock:
            return [request.answer for request in self.requests if request.route == route]

    def next_fault(self, route: str) -> Fault | None:
        with self.lock:
            planned = self.faults.get(route)
            return planned.pop(0) if planned else None

    def record(self, route: str, method: str, path: str, answer: Fault, headers: Any = None) -> None:
        identity = (headers.get("Authorization"), headers.get("kubeflow-userid")) if headers else (None, None)
        with self.lock:
            self.requests.append(Request(route, method, path, answer, *identity))

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose cluster is this stand-in (plain HTTP, no credentials)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "trial", "user": {"token": "trial-token"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "trial"}}],
            "current-context": "standin",
        }
        path.write_text(json.dumps(config))
        return path


def _v1_run() -> dict[str, Any]:
    name, value = METRIC
    return {
        "run": {
            "id": RUN_ID,
            "name": "random-exp-x7k2p",
            "status": "Succeeded",
            "metrics": [{"name": name, "node_id": "step", "number_value": value, "format": "RAW"}],
        },
        "pipeline_runtime": {"workflow_manifest": json.dumps({"metadata": {"name": WORKFLOW}})},
    }


def _v2_run() -> dict[str, Any]:
    return {"run_id": RUN_ID, "display_name": "random-exp-x7k2p", "state": "SUCCEEDED", "experiment_id": "e1"}


def _trial(version: str, namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"kubeflow.org/{version}",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "0b1e7c2d-trial",
            "ownerReferences": [
                {
                    "apiVersion": f"kubeflow.org/{version}",
                    "kind": "Experiment",
                    "name": "random-exp",
                    "uid": "9a8b7c6d-experiment",
                    "controller": True,
                }
            ],
        },
    }


def _answer(route: str, match: re.Match[str], v2: bool) -> dict[str, Any]:
    """The normal answer of a route: just the fields the kfp clients and Kale read."""
    pipeline: dict[str, str | dict[str, str]]
    if v2:
        experiment = {"experiment_id": "e1", "display_name": "kale-exp"}
        pipeline = {"pipeline_id": PIPELINE_ID, "display_name": "kale-pipeline"}
        version = {"pipeline_version_id": VERSION_ID, "display_name": "v1"}
    else:
        experiment = {"id": "e1", "name": "kale-exp"}
        version = {"id": VERSION_ID, "name": "v1"}
        pipeline = {"id": PIPELINE_ID, "name": "kale-pipeline", "default_version": version}
    answers: dict[str, Any] = {
        "healthz": {"multi_user": True, "commit_sha": "standin", "tag_name": "standin"},
        "list_experiments": {"experiments": [experiment], "total_size": 1},
        "create_experiment": experiment,
        "get_pipeline": pipeline,
        "get_pipeline_version": version,
        "create_run": _v2_run() if v2 else _v1_run(),
        "get_run": _v2_run() if v2 else _v1_run(),
        "patch_workflow": {"metadata": {"name": WORKFLOW}},
    }
    if route in ("get_trial", "patch_trial"):
        return _trial(match["version"], match["ns"], match.groupdict().get("name") or "random-exp-x7k2p")
    return dict(answers[route])


class _Handler(JsonHandler):
    server: _Server

    def _route(self, method: str) -> tuple[str, re.Match[str]] | None:
        path = self.path.split("?", 1)[0]
        for name, route_method, pattern in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return name, match
        return None

    def _serve(self, method: str) -> None:
        if method in ("POST", "PATCH"):
            self.read_json()
        state = self.server.state
        found = self._route(method)
        if found is None:
            state.record("unknown", method, self.path, 404, self.headers)
            self.answer(404, {"error": f"the stand-in has no route for {method} {self.path}", "code": 5})
            return
        route, match = found
        fault = state.next_fault(route)
        state.record(route, method, self.path, 200 if fault is None else fault, self.headers)
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if isinstance(fault, int):
            reason = HTTPStatus(fault).phrase
            self.answer(fault, {"error": reason, "message": reason, "code": 14 if fault >= 500 else 5})
            return
        self.answer(200, _answer(route, match, self.path.startswith("/apis/v2beta1")))

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: MlPipelineStandIn, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


@contextmanager
def ml_pipeline_standin(
    faults: dict[str, list[Fault]] | None = None, port: int = 0, tls: ssl.SSLContext | None = None
) -> Iterator[MlPipelineStandIn]:
    """A running stand-in on a loopback port (0: a free one), over HTTPS with ``tls``, stopped on exit."""
    state = MlPipelineStandIn(faults={route: list(planned) for route, planned in (faults or {}).items()})
    server = _Server(state, port)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="ml-pipeline-standin", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
