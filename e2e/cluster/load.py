"""Admissions at a fixed rate for as long as a scenario lasts, each counted by what became of it.

Trial Pods (Katib's collector and an Istio proxy), trial Jobs (owned by a Trial) and notebook Pods are
created in profile namespaces straight through kube-apiserver's REST API, as Katib's controllers and the
notebook controller do, on kept-alive connections from a few workers. Pods carry a scheduling gate and Jobs
are suspended: nothing runs, so the admission path is all that is loaded. A creation is ``refused`` when
kube-apiserver answers that calling a webhook failed, ``unmutated`` when it was stored without our change
(what a notebook Pod gets when the webhook fails open), ``failed`` for any other error.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from e2e.cluster.api import Api
from tests.webhook import katib_objects

SCHEDULING_GATE = {"name": "kubeflow-extension.e2e/admission-only"}
"""Keeps the Pods off the node: the load is admissions, not containers."""
WEBHOOK_CALL_FAILED = "failed calling webhook"


@dataclass(frozen=True)
class Admission:
    """One creation: which object, when it was sent (monotonic), how long it took, what became of it."""

    kind: str
    namespace: str
    sent: float
    seconds: float
    outcome: str
    """``mutated``, ``unmutated``, ``refused`` or ``failed``."""
    detail: str = ""


def trial_pod(name: str) -> dict[str, Any]:
    pod = katib_objects.trial_pod("v0.19")
    # Its Job does not exist here: the garbage collector would delete the Pod while it is counted.
    pod["metadata"].pop("ownerReferences")
    pod["metadata"]["name"] = name
    del pod["metadata"]["generateName"], pod["metadata"]["namespace"]
    pod["spec"]["schedulingGates"] = [SCHEDULING_GATE]
    return pod


def notebook_pod(name: str) -> dict[str, Any]:
    pod = katib_objects.notebook_pod()
    pod["metadata"]["name"] = name
    del pod["metadata"]["namespace"]
    pod["spec"]["schedulingGates"] = [SCHEDULING_GATE]
    return pod


def trial_job(name: str, trial: Mapping[str, Any]) -> dict[str, Any]:
    """A Job owned by ``trial`` (an existing Trial, so the garbage collector keeps the Job)."""
    job = katib_objects.trial_job(kale="0.7")
    job["metadata"]["name"] = name
    del job["metadata"]["namespace"]
    job["metadata"]["ownerReferences"][0].update(name=trial["metadata"]["name"], uid=trial["metadata"]["uid"])
    job["spec"]["suspend"] = True
    return job


def was_mutated(sent: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether our webhook's change is in the stored object (pure)."""
    if stored["kind"] == "Job":
        labels = stored["spec"]["template"].get("metadata", {}).get("labels", {})
        return bool(labels.get("kubeflow-extension") == "true")
    if "notebook-name" in sent["metadata"].get("labels", {}):
        return bool(stored["metadata"].get("labels", {}).get("kubeflow-extension") == "true")

    def collector(pod: Mapping[str, Any]) -> Any:
        return [c for c in pod["spec"]["containers"] if c["name"] == "metrics-logger-and-collector"]

    return bool(collector(stored)) and collector(stored) != collector(sent)


def classify(status: int, body: bytes, sent: Mapping[str, Any]) -> tuple[str, str]:
    """The outcome and a short detail of one creation's answer (pure)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return "failed", f"{status}: {body[:200]!r}"
    if status == 201:
        if was_mutated(sent, answer):
            return "mutated", ""
        return "unmutated", f"{sent['kind']} {sent['metadata']['name']} stored without our change"
    message = str(answer.get("message", answer))
    return ("refused" if WEBHOOK_CALL_FAILED in message else "failed"), f"{status}: {message[:300]}"


KINDS = ("trial-pod", "trial-job", "notebook-pod")


@dataclass
class Load:
    """Creates objects at ``rate`` per second across ``namespaces`` from ``start()`` until ``stop()``; with
    ``rate`` None, each worker sends its next as soon as the last is answered (a closed loop)."""

    api: Api
    namespaces: Sequence[str]
    trials: Mapping[str, Mapping[str, Any]]
    """The Trial that owns the Jobs, per namespace."""
    rate: float | None = 10.0
    workers: int = 4
    kinds: Sequence[str] = KINDS
    """Taken in turn; a namespace without a Trial takes no trial Jobs."""
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    """In every name: loads after one another in the same namespaces never collide."""
    admissions: list[Admission] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        began = time.monotonic()
        for worker in range(self.workers):
            thread = threading.Thread(target=self._work, args=(worker, began), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Admission]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return list(self.admissions)

    def _objects(self, number: int) -> tuple[str, dict[str, Any], str]:
        namespace = self.namespaces[number % len(self.namespaces)]
        match self.kinds[number % len(self.kinds)]:
            case "trial-pod":
                return namespace, trial_pod(f"trial-{self.run}-{number}"), "pods"
            case "trial-job":
                return namespace, trial_job(f"trial-{self.run}-{number}", self.trials[namespace]), "jobs"
            case _:
                return namespace, notebook_pod(f"notebook-{self.run}-{number}"), "pods"

    def _work(self, worker: int, began: float) -> None:
        """Send creation ``worker``, ``worker + workers``, ... each at its time on the fixed schedule."""
        for number in itertools.count(worker, self.workers):
            due = began + number / self.rate if self.rate else 0.0
            while (wait := due - time.monotonic()) > 0:
                if self._stop.wait(min(wait, 0.5)):
                    return
            if self._stop.is_set():
                return
            namespace, obj, resource = self._objects(number)
            prefix = "/apis/batch/v1" if resource == "jobs" else "/api/v1"
            sent = time.monotonic()
            try:
                outcome, detail = classify(
                    *self.api.call("POST", f"{prefix}/namespaces/{namespace}/{resource}", obj), obj
                )
            except (OSError, http.client.HTTPException) as error:
                # Our own connection to kube-apiserver, not an admission: counted apart (and reopened).
                outcome, detail = "failed", f"client: {error!r}"
            with self._lock:
                self.admissions.append(
                    Admission(obj["kind"], namespace, sent, time.monotonic() - sent, outcome, detail)
                )


def summary(admissions: Sequence[Admission]) -> dict[str, int]:
    """How many of each outcome, and in all."""
    counts = Counter(a.outcome for a in admissions)
    return {
        "attempted": len(admissions),
        **{o: counts[o] for o in ("mutated", "unmutated", "refused", "failed")},
    }
