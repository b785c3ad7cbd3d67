"""``just demo``: the whole product on the local control plane, with a report, in well under a minute.

Starts etcd, kube-apiserver, kube-controller-manager and Metacontroller as local processes, serves the
hooks (HTTP) and the webhook (HTTPS) with uvicorn, and applies the project's own manifests
(``metacontroller/`` and ``webhook/manifests/``) pointed at them. Then it creates what a Kubeflow cluster
would: a Profile and its namespace, a Katib trial Job (owned by a real Trial), a Katib trial Pod with the
metrics collector and a classic Istio proxy, a Kale trial Pod, a notebook Pod and an unrelated Pod; and
prints what Metacontroller created for the namespace and, for every object, what admission changed
between what was sent and what the API server stored.

It runs once per identity mode (``header``, ``token``, ``both``; ``--identity-mode`` picks one), each on a
control plane of its own, and reports the mode with what it created.

It doubles as a smoke test: the exit code is 1 when an expected effect is missing, and the report says
which. ``--keep`` leaves the last run's control plane running (stop it with
``python -m e2e.cluster.controlplane down``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import difflib
import json
import re
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from doctor.codes import METACONTROLLER_OUTSIDE
from e2e.cluster.controlplane import (
    DEFAULT_STATE_FILE,
    REPO_ROOT,
    ControlPlane,
    Kubectl,
    KubectlError,
    MissingBinariesError,
    state_is_live,
)
from e2e.framework.doctor import run_report
from e2e.framework.objects import profile_objects
from e2e.framework.processes import eventually
from hooks.desired import CURRENT_ISTIO, desired
from hooks.identity import MODE_ANNOTATION, MODE_LABEL
from hooks.istio import MANAGED_BY, NAMESPACE_LABEL
from service.config import IDENTITY_MODES, Config
from tests.webhook import katib_objects
from webhook.mutations import ISTIO_INJECT, PROXY_CONTAINER, collector, kale, token

# -- the diff: pure ---------------------------------------------------------------------------------


class _Missing:
    """A path that is absent on one side of a change."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_OBJECT_FIELDS = (
    # Identity and bookkeeping of every stored object.
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.creationTimestamp",
    "metadata.generation",
    "metadata.managedFields",
    "status",
)
_POD_SPEC_DEFAULTS = (
    "dnsPolicy",
    "restartPolicy",
    "schedulerName",
    "securityContext",
    "terminationGracePeriodSeconds",
    "serviceAccount",  # the deprecated mirror of serviceAccountName (which is always compared)
    *(
        f"{containers}[*].{name}"
        for containers in ("containers", "initContainers")
        for name in ("imagePullPolicy", "resources", "terminationMessagePath", "terminationMessagePolicy")
    ),
)
_JOB_LABELS = (
    '["batch.kubernetes.io/controller-uid"]',
    '["batch.kubernetes.io/job-name"]',
    ".controller-uid",
    ".job-name",
)

API_SERVER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Pod": (
        *_OBJECT_FIELDS,
        *(f"spec.{name}" for name in _POD_SPEC_DEFAULTS),
        # Admission plugins: ServiceAccount (account, token volume), DefaultTolerationSeconds, Priority.
        "spec.serviceAccountName",
        "spec.volumes[kube-api-access-*]",
        "spec.containers[*].volumeMounts[kube-api-access-*]",
        "spec.initContainers[*].volumeMounts[kube-api-access-*]",
        "spec.enableServiceLinks",
        "spec.preemptionPolicy",
        "spec.priority",
        "spec.tolerations",
    ),
    "Job": (
        *_OBJECT_FIELDS,
        *(f"spec.template.spec.{name}" for name in _POD_SPEC_DEFAULTS),
        # The Job's labels default to its template's; the selector and the labels it selects Pods by.
        "metadata.labels",
        *(f"spec.template.metadata.labels{key}" for key in _JOB_LABELS),
        "spec.backoffLimit",
        "spec.completionMode",
        "spec.completions",
        "spec.manualSelector",
        "spec.parallelism",
        "spec.podReplacementPolicy",
        "spec.selector",
        "spec.suspend",
    ),
}
"""By kind, what kube-apiserver fills in by itself (defaulting and its built-in admission plugins), as
patterns over ``diff`` paths (``*`` matches anything; a pattern also covers everything below it). They
are ignored only where the sender left the field out: a value that was sent and changed is always shown."""

JOB_CONTROLLER_FIELDS: tuple[str, ...] = (
    "metadata.name",
    "metadata.generateName",
    "metadata.namespace",
    "metadata.ownerReferences",
    "metadata.finalizers",
)
"""What the Job controller sets on a Pod beyond its template."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Change:
    """One difference: ``before`` is what was sent, ``after`` what was stored (either may be MISSING)."""

    path: str
    before: Any
    after: Any


def key_path(parent: str, key: str) -> str:
    """``metadata`` + ``labels`` -> ``metadata.labels``; keys with dots or slashes are quoted:
    ``labels["sidecar.istio.io/inject"]``."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def _named(items: Sequence[Any]) -> bool:
    """Whether list items are identified by their ``name`` (containers, volumes, mounts, env...)."""
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def _empty(value: Any) -> bool:
    return value is MISSING or value in ({}, [], None)


def _all(kind: type, *values: Any) -> bool:
    """Whether every value that is present is a ``kind``."""
    return all(isinstance(value, kind) for value in values if value is not MISSING)


def _changes(path: str, before: Any, after: Any) -> Iterator[Change]:
    if _empty(before) and _empty(after):
        return
    if _all(Mapping, before, after):
        old = {} if before is MISSING else before
        new = {} if after is MISSING else after
        for key in sorted({*old, *new}):
            yield from _changes(key_path(path, str(key)), old.get(key, MISSING), new.get(key, MISSING))
        return
    if _all(list, before, after):
        old_items = [] if before is MISSING else before
        new_items = [] if after is MISSING else after
        if _named(old_items) and _named(new_items):
            old_by_name = {item["name"]: item for item in old_items}
            new_by_name = {item["name"]: item for item in new_items}
            for name in [*old_by_name, *(n for n in new_by_name if n not in old_by_name)]:
                yield from _changes(
                    f"{path}[{name}]", old_by_name.get(name, MISSING), new_by_name.get(name, MISSING)
                )
            return
        if len(old_items) == len(new_items):
            for index, (old, new) in enumerate(zip(old_items, new_items, strict=True)):
                yield from _changes(f"{path}[{index}]", old, new)
            return
    if before != after:
        yield Change(path, before, after)


def _pattern(glob: str) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in glob.split("*"))
    return re.compile(rf"{body}(?:[.\[].*)?")


def diff(sent: Any, stored: Any, ignore: Sequence[str] = ()) -> list[Change]:
    """Every difference between what was sent and what was stored, leaf by leaf.

    Maps are compared key by key, in key order; lists whose items all have a distinct ``name`` item by
    item (path ``containers[main]``); other lists of the same length index by index, else as one value.
    An empty map or list is the same as none. A field the sender left out that matches an ``ignore``
    pattern is not reported.
    """
    patterns = [_pattern(glob) for glob in ignore]
    return [
        change
        for change in _changes("", sent, stored)
        if change.before is not MISSING or not any(p.fullmatch(change.path) for p in patterns)
    ]


def admission_diff(
    sent: Mapping[str, Any], stored: Mapping[str, Any], extra: Sequence[str] = ()
) -> list[Change]:
    """``diff`` without what kube-apiserver itself fills in for the stored object's kind (and ``extra``)."""
    return diff(sent, stored, (*API_SERVER_FIELDS.get(str(stored.get("kind")), _OBJECT_FIELDS), *extra))


def summarize(value: Any, width: int = 72) -> str:
    """A value in a few words: a script as its line count and first line, a long string cut short, a
    string that would read as another type quoted."""
    if isinstance(value, str):
        lines = value.splitlines()
        if len(lines) > 1:
            return f"<{len(lines)} lines: {_cut(lines[0], width)}>"
        return _cut(_quoted(value), width)
    if isinstance(value, list):
        return "[" + ", ".join(summarize(item, width) for item in value) + "]"
    if isinstance(value, Mapping):
        return _cut(json.dumps(value, separators=(",", ":")), width)
    return json.dumps(value)


def _quoted(text: str) -> str:
    try:
        ambiguous = not isinstance(json.loads(text), str)
    except ValueError:
        ambiguous = text != text.strip() or text == ""
    return json.dumps(text) if ambiguous else text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _string_change(before: str, after: str) -> str:
    if len(before) + len(after) <= 60 and "\n" not in before + after:
        return f"{_quoted(before)} → {_quoted(after)}"
    start = 0
    limit = min(len(before), len(after))
    while start < limit and before[start] == after[start]:
        start += 1
    end = 0
    while end < limit - start and before[-1 - end] == after[-1 - end]:
        end += 1
    removed, inserted = before[start : len(before) - end], after[start : len(after) - end]
    context = ("…" if start > 24 else "") + before[max(0, start - 24) : start]
    where = f"after {context!r}" if start else "at the start"
    if not removed:
        return f"inserted {summarize(inserted)} {where}"
    if not inserted:
        return f"removed {summarize(removed)} {where}"
    return f"replaced {summarize(removed)} with {summarize(inserted)} {where}"


def _list_change(before: list[Any], after: list[Any]) -> str:
    keys_before = [json.dumps(item, sort_keys=True) for item in before]
    keys_after = [json.dumps(item, sort_keys=True) for item in after]
    parts = []
    matcher = difflib.SequenceMatcher(a=keys_before, b=keys_after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            parts.append(f"removed {summarize(before[i1:i2])} at [{i1}]")
        if tag in ("replace", "insert"):
            parts.append(f"inserted {summarize(after[j1:j2])} at [{j1}]")
    return ", ".join(parts)


def describe(change: Change) -> str:
    """One line: ``+ path: value`` (added), ``- path: value`` (removed), ``~ path: old → new``."""
    before, after = change.before, change.after
    if before is MISSING:
        return f"+ {change.path}: {summarize(after)}"
    if after is MISSING:
        return f"- {change.path}: {summarize(before)}"
    if isinstance(before, str) and isinstance(after, str):
        return f"~ {change.path}: {_string_change(before, after)}"
    if isinstance(before, list) and isinstance(after, list):
        return f"~ {change.path}: {_list_change(before, after)}"
    return f"~ {change.path}: {summarize(before)} → {summarize(after)}"


# -- the scenario ---------------------------------------------------------------------------------

CONFIG = Config()
PROFILE = "alice"
OWNER = "alice@example.com"
TRIAL = "random-exp-x7k2p"
SWITCHED_PROFILE = "bob"
SWITCHED_TO = {"header": "token", "token": "header", "both": "header"}
"""The mode the demo's second namespace asks for by annotation, in each run's mode."""
CHILDREN_TIMEOUT = 60.0
WAIT_TIMEOUT = 30.0
AUTHORIZATION = ("AuthorizationPolicy", "authorizationpolicies.security.istio.io")
ENVOY_FILTER = ("EnvoyFilter", "envoyfilters.networking.istio.io")

Object = dict[str, Any]


def kubeflow_namespace() -> Object:
    """Home of the authorization objects (and, in a real cluster, of ml-pipeline)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONFIG.kubeflow_namespace}}


def trial_object() -> Object:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": TRIAL,
            "namespace": PROFILE,
            "labels": {"katib.kubeflow.org/experiment": "random-exp"},
        },
        "spec": {"parameterAssignments": [{"name": "lr", "value": "0.01"}]},
    }


def trial_job(trial_uid: str) -> Object:
    """Katib's trial Job for a Kale pipeline (Kale's template: no sidecar, ``pipeline-runner``)."""
    job = katib_objects.trial_job()
    job["metadata"]["namespace"] = PROFILE
    job["metadata"]["ownerReferences"][0]["uid"] = trial_uid
    return job


def standalone_pod(pod: Object, name: str) -> Object:
    """A builder's Pod in the demo namespace, with a fixed name and without the ownerReference to a
    Job that does not exist here (the garbage collector would delete the Pod)."""
    pod = copy.deepcopy(pod)
    metadata = pod["metadata"]
    metadata.pop("generateName", None)
    metadata.pop("ownerReferences", None)
    metadata["name"] = name
    metadata["namespace"] = PROFILE
    return pod


def plain_pod() -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain-pod", "namespace": PROFILE, "labels": {"app": "plain"}},
        "spec": {
            "serviceAccountName": CONFIG.service_account,
            "containers": [{"name": "app", "image": "python:3.11-slim", "command": ["sleep", "infinity"]}],
        },
    }


# -- expected effects -----------------------------------------------------------------------------


@dataclass
class Checks:
    """Expected effects, each present or missing."""

    results: list[tuple[str, bool]] = field(default_factory=list)

    def expect(self, what: str, ok: bool) -> bool:
        self.results.append((what, ok))
        return ok

    @property
    def missing(self) -> list[str]:
        return [what for what, ok in self.results if not ok]


def lookup(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...``, or None where something is missing."""
    for part in path:
        if isinstance(obj, Mapping) and isinstance(part, str):
            obj = obj.get(part)
        elif isinstance(obj, list) and isinstance(part, int) and -len(obj) <= part < len(obj):
            obj = obj[part]
        else:
            return None
    return obj


def container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return next((c for c in lookup(pod, "spec", "containers") or [] if c.get("name") == name), {})


def wanted_children(config: Config) -> list[Object]:
    profile = {"metadata": {"name": PROFILE}, "spec": {"owner": {"name": OWNER}}}
    return desired(PROFILE, profile, CURRENT_ISTIO, config)


def check_children(checks: Checks, found: Mapping[str, Object | None], config: Config = CONFIG) -> None:
    """Each child exists, as the hooks would make it, and is owned by the Namespace; no other child."""
    wanted = wanted_children(config)
    for kind in sorted(set(found) - {w["kind"] for w in wanted}):
        checks.expect(f"no {kind} in {config.identity_mode} identity mode", found[kind] is None)
    for want in wanted:
        kind, metadata = want["kind"], want["metadata"]
        what = f"{kind} {metadata['namespace']}/{metadata['name']}"
        stored = found.get(kind)
        if not checks.expect(
            f"{what} created by Metacontroller within {CHILDREN_TIMEOUT:.0f} s", bool(stored)
        ):
            continue
        checks.expect(f"{what} has the spec the hooks return", lookup(stored, "spec") == want["spec"])
        owners = [
            (o.get("kind"), o.get("name"), o.get("controller"))
            for o in lookup(stored, "metadata", "ownerReferences") or []
        ]
        checks.expect(f"{what} is owned by Namespace {PROFILE}", ("Namespace", PROFILE, True) in owners)


def check_trial_pod_template(checks: Checks, what: str, metadata: Any, spec: Any) -> None:
    """The trial Job's mutation: sidecar, workload label and service account."""
    labels, annotations = lookup(metadata, "labels") or {}, lookup(metadata, "annotations") or {}
    checks.expect(
        f"{what}: serviceAccountName {CONFIG.service_account}",
        lookup(spec, "serviceAccountName") == CONFIG.service_account,
    )
    checks.expect(
        f"{what}: labels {ISTIO_INJECT}=true and {CONFIG.workload_label}=true",
        labels.get(ISTIO_INJECT) == "true" and labels.get(CONFIG.workload_label) == "true",
    )
    checks.expect(f"{what}: annotation {ISTIO_INJECT}=true", annotations.get(ISTIO_INJECT) == "true")


def check_collector(checks: Checks, what: str, sent: Object, stored: Object) -> None:
    """The collector waits only for the main process, then stops the proxy; its arguments are kept."""
    name = collector.FILE_COLLECTOR_CONTAINER
    args = list(container(stored, name).get("args") or [])
    checks.expect(
        f"{what}: collector wrapped to stop the Istio proxy",
        collector.is_wrapper(container(stored, name).get("command")),
    )
    checks.expect(
        f"{what}: collector gets {collector.WAIT_FLAG}, its other arguments unchanged",
        args.count(collector.WAIT_FLAG) == 1
        and [a for a in args if a != collector.WAIT_FLAG] == list(container(sent, name).get("args") or []),
    )


def check_kale(checks: Checks, what: str, stored: Object) -> None:
    """Kale's program polls the run through the retrying get_run."""
    words = [
        w
        for c in lookup(stored, "spec", "containers") or []
        for w in c.get("command", []) + c.get("args", [])
    ]
    checks.expect(f"{what}: Kale's program retries get_run", any(kale.MARKER in w for w in words))


def check_token(checks: Checks, what: str, spec: Any, config: Config) -> None:
    """Token identity: the projected token in every ordinary container; none in header mode."""
    volumes = [v for v in lookup(spec, "volumes") or [] if v.get("name") == config.token_volume]
    if config.identity_mode == "header":
        checks.expect(f"{what}: no token volume in header mode", not volumes)
        return
    checks.expect(
        f"{what}: one projected {config.token_audience} token volume",
        len(volumes) == 1 and token.provides_token(volumes[0], config),
    )
    for item in lookup(spec, "containers") or []:
        if item.get("name") == PROXY_CONTAINER:
            continue
        mounted = any(
            m.get("name") == config.token_volume and m.get("mountPath") == config.token_directory
            for m in item.get("volumeMounts") or []
        )
        env = {"name": config.token_path_env, "value": config.token_path} in (item.get("env") or [])
        checks.expect(
            f"{what}: container {item.get('name')} mounts the token and has {config.token_path_env}",
            mounted and env,
        )


def check_label(checks: Checks, what: str, stored: Object) -> None:
    checks.expect(
        f"{what}: label {CONFIG.workload_label}=true",
        lookup(stored, "metadata", "labels", CONFIG.workload_label) == "true",
    )


# -- running it -----------------------------------------------------------------------------------


@dataclass
class Admitted:
    """One object as sent and as stored, and what changed in between."""

    title: str
    sent: Object
    stored: Object
    changes: list[Change]

    @property
    def name(self) -> str:
        metadata = self.stored.get("metadata", {})
        return f"{self.stored.get('kind')} {metadata.get('namespace')}/{metadata.get('name')}"


@dataclass
class Demo:
    """The scenario on a started control plane: ``run()`` then ``report()``."""

    plane: ControlPlane
    mode: str = "header"
    checks: Checks = field(default_factory=Checks)
    timings: dict[str, float] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    children: dict[str, Object | None] = field(default_factory=dict)
    admitted: list[Admitted] = field(default_factory=list)
    switched: str = ""
    doctor: list[str] = field(default_factory=list)

    @property
    def kubectl(self) -> Kubectl:
        return self.plane.kubectl

    @property
    def config(self) -> Config:
        return dataclasses.replace(CONFIG, identity_mode=self.mode)

    def _lap(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.timings[name] = now - since
        return now

    def run(self) -> None:
        began = time.monotonic()
        mode = {"KFEXT_IDENTITY_MODE": self.mode}
        hooks = self.plane.start_hooks(env=mode)
        webhook = self.plane.start_webhook()
        self.services = {
            s.name: f"{s.url}  (image {s.image})" if s.image else s.url for s in (hooks, webhook)
        }
        self.kubectl.apply([kubeflow_namespace()])
        self.plane.apply_project_manifests(REPO_ROOT / "metacontroller", hooks=hooks)
        self.plane.apply_project_manifests(REPO_ROOT / "webhook" / "manifests", webhook=webhook)
        began = self._lap("services and manifests", began)

        self.kubectl.apply(profile_objects(PROFILE, OWNER, CONFIG))
        self.children = self.wait_for_children()
        check_children(self.checks, self.children, self.config)
        began = self._lap("profile namespace to children", began)

        self.wait_for_admission()
        self.create_workloads()
        began = self._lap("workloads", began)
        self.switch_a_namespace()
        began = self._lap("a namespace switched by annotation", began)
        self.diagnose()
        self._lap("doctor", began)

    def diagnose(self) -> None:
        """``kubeflow-extension doctor`` on the demo cluster, as its user would run it. Metacontroller runs
        here as a process, not in a Pod, which doctor would report as a warning (KFX205): the demo
        suppresses that code, as an operator with Metacontroller outside the cluster would, and expects
        nothing else, and that warning to be the one suppressed."""
        outside = METACONTROLLER_OUTSIDE.code
        try:
            status, report = run_report(self.plane.kubeconfig, "--suppress", outside)
        except RuntimeError as error:
            status, report = (
                -1,
                {"findings": [{"code": "?", "severity": "error", "message": str(error)[-300:]}]},
            )
        findings, suppressed = report["findings"], report.get("suppressed", [])
        self.checks.expect(
            "doctor finds nothing wrong on the demo cluster (exit 0)", status == 0 and not findings
        )
        self.checks.expect(
            f"doctor's only suppressed finding is {outside} (Metacontroller outside the cluster)",
            [f["code"] for f in suppressed] == [outside],
        )
        verdict = "no finding" if not findings else f"{len(findings)} finding(s)"
        self.doctor = [
            f"kubeflow-extension doctor --suppress {outside} (exit {status}): {verdict}",
            *(f"  {f['severity'].upper()} {f['code']}: {f['message']}" for f in findings),
            *(f"  suppressed {f['code']}: {f['message']}" for f in suppressed),
        ]

    def wait_for_children(self) -> dict[str, Object | None]:
        kinds = {w["kind"] for w in wanted_children(self.config)}

        def found() -> dict[str, Object | None] | None:
            children = self.find_children()
            return children if {k for k, v in children.items() if v} == kinds else None

        try:
            return eventually(found, what="Metacontroller's children", timeout=CHILDREN_TIMEOUT)
        except TimeoutError:
            return self.find_children()

    def find_children(self) -> dict[str, Object | None]:
        selector = ",".join(f"{k}={v}" for k, v in {**MANAGED_BY, NAMESPACE_LABEL: PROFILE}.items())
        children: dict[str, Object | None] = {}
        for kind, resource in (AUTHORIZATION, ENVOY_FILTER):
            items = self.kubectl("get", resource, "--all-namespaces", "-l", selector)["items"]
            children[kind] = items[0] if items else None
        return children

    def mode_label(self, namespace: str) -> Any:
        return lookup(self.kubectl.get("namespace", namespace), "metadata", "labels", MODE_LABEL)

    def wait_for_admission(self) -> None:
        """Until the hooks labelled the namespace with its mode (the webhook configuration routes by it), the
        webhook configuration is in effect (a dry-run notebook Pod comes back labelled) and the namespace's
        ``default`` ServiceAccount, which Pods without one need, exists."""
        eventually(
            lambda: self.mode_label(PROFILE) == self.mode,
            what=f"the hooks to label {PROFILE} {MODE_LABEL}={self.mode}",
            timeout=WAIT_TIMEOUT,
        )
        probe = standalone_pod(katib_objects.notebook_pod(), "admission-probe")

        def labelled() -> bool:
            try:
                stored = self.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
            except KubectlError:
                return False
            return bool(lookup(stored, "metadata", "labels", CONFIG.workload_label) == "true")

        eventually(labelled, what="the webhook to label a notebook Pod (dry run)", timeout=WAIT_TIMEOUT)

    def create(self, obj: Object) -> Object:
        created: Object = self.kubectl("create", "-f", "-", stdin=json.dumps(obj))
        return created

    def create_workloads(self) -> None:
        trial = self.create(trial_object())
        job = trial_job(trial["metadata"]["uid"])
        pods = {
            "katib-trial": ("Katib trial Pod: collector, classic istio-proxy", katib_objects.trial_pod()),
            "kale-trial": ("Kale trial Pod", katib_objects.trial_pod(kale="0.7")),
            "my-notebook-0": ("notebook Pod", katib_objects.notebook_pod()),
            "plain-pod": ("an unrelated Pod", plain_pod()),
        }
        sent = {name: standalone_pod(pod, name) for name, (_, pod) in pods.items()}
        for obj in (job, *sent.values()):
            self.create(obj)

        # Read back what the API server stored.
        stored_job: Object = self.kubectl("get", "job", TRIAL, "-n", PROFILE)
        self.admitted.append(
            Admitted(
                f"Katib trial Job, owned by Trial {TRIAL}", job, stored_job, admission_diff(job, stored_job)
            )
        )
        template = stored_job["spec"]["template"]
        check_trial_pod_template(
            self.checks, f"Job {PROFILE}/{TRIAL} template", template["metadata"], template["spec"]
        )
        check_token(self.checks, f"Job {PROFILE}/{TRIAL} template", template["spec"], self.config)

        job_pod = self.wait_for_job_pod(stored_job)
        if job_pod is not None:
            from_template = {"apiVersion": "v1", "kind": "Pod", **template}
            changes = admission_diff(from_template, job_pod, JOB_CONTROLLER_FIELDS)
            self.admitted.append(
                Admitted(
                    "its Pod, sent by the Job controller from the stored template",
                    from_template,
                    job_pod,
                    changes,
                )
            )
            what = f"Pod {PROFILE}/{job_pod['metadata']['name']}"
            check_trial_pod_template(self.checks, what, job_pod["metadata"], job_pod["spec"])
            check_kale(self.checks, what, job_pod)
            check_token(self.checks, what, job_pod["spec"], self.config)

        stored = {p["metadata"]["name"]: p for p in self.kubectl("get", "pods", "-n", PROFILE)["items"]}
        for name, (title, _) in pods.items():
            if not self.checks.expect(f"Pod {PROFILE}/{name} created", name in stored):
                continue
            self.admitted.append(
                Admitted(title, sent[name], stored[name], admission_diff(sent[name], stored[name]))
            )
        for name in ("katib-trial", "kale-trial"):
            if name in stored:
                check_collector(self.checks, f"Pod {PROFILE}/{name}", sent[name], stored[name])
        if "kale-trial" in stored:
            check_kale(self.checks, f"Pod {PROFILE}/kale-trial", stored["kale-trial"])
        if "my-notebook-0" in stored:
            check_label(self.checks, f"Pod {PROFILE}/my-notebook-0", stored["my-notebook-0"])
        for name in ("katib-trial", "kale-trial", "my-notebook-0"):
            if name in stored:
                check_token(self.checks, f"Pod {PROFILE}/{name}", stored[name]["spec"], self.config)
        if "plain-pod" in stored:
            self.checks.expect(
                f"Pod {PROFILE}/plain-pod unchanged",
                not admission_diff(sent["plain-pod"], stored["plain-pod"]),
            )

    def wait_for_job_pod(self, job: Object) -> Object | None:
        selector = ",".join(f"{k}={v}" for k, v in job["spec"]["selector"]["matchLabels"].items())

        def pod() -> Object | None:
            items = self.kubectl("get", "pods", "-n", PROFILE, "-l", selector)["items"]
            return items[0] if items else None

        try:
            return eventually(pod, what="the trial Job's Pod", timeout=WAIT_TIMEOUT)
        except TimeoutError:
            self.checks.expect(f"the Job controller creates a Pod for Job {PROFILE}/{TRIAL}", False)
            return None

    # -- the report ---------------------------------------------------------------------------------

    def switch_a_namespace(self) -> None:
        """A second profile namespace annotated with another mode: the hooks label it so and the webhook
        follows, under this run's configuration."""
        other = SWITCHED_TO[self.mode]
        namespace_name = SWITCHED_PROFILE
        profile, namespace, account = profile_objects(namespace_name, f"{namespace_name}@example.com", CONFIG)
        namespace["metadata"]["annotations"][MODE_ANNOTATION] = other
        self.kubectl.apply([profile, namespace, account])
        with contextlib.suppress(TimeoutError):
            eventually(
                lambda: self.mode_label(namespace_name) == other,
                what=f"the hooks to label {namespace_name} {MODE_LABEL}={other}",
                timeout=WAIT_TIMEOUT,
            )
        label = self.mode_label(namespace_name)
        self.checks.expect(f"namespace {namespace_name} annotated {other}: labelled {other}", label == other)
        probe = standalone_pod(katib_objects.notebook_pod(), "switched-probe")
        probe["metadata"]["namespace"] = namespace_name
        stored = self.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
        token = any(v.get("name") == CONFIG.token_volume for v in lookup(stored, "spec", "volumes") or [])
        wants_token = other != "header"
        self.checks.expect(
            f"a notebook Pod in {namespace_name} {'gets' if wants_token else 'gets no'} the token",
            token == wants_token,
        )
        self.switched = (
            f"Namespace {namespace_name}, annotated {MODE_ANNOTATION}={other} under the configuration's "
            f"{self.mode}: labelled {MODE_LABEL}={label}; its notebook Pods get "
            + ("the projected token" if token else "no token")
        )

    def report(self) -> list[str]:
        lines = [f"Identity mode: {self.mode}", ""]
        lines += [f"{name:<8} {url}" for name, url in self.services.items()]
        lines += [
            "",
            f"Profile {PROFILE} (owner {OWNER}), Namespace {PROFILE}: children created by Metacontroller",
        ]
        lines += children_lines(self.children, self.mode)
        lines += ["", "Admission: what was sent → what the API server stored (API server defaults left out)"]
        for item in self.admitted:
            lines.append(f"  {item.name}  ({item.title})")
            lines += [f"      {describe(change)}" for change in item.changes] or ["      unchanged"]
        if self.switched:
            lines += ["", self.switched]
        return [*lines, "", *self.doctor] if self.doctor else lines


def children_lines(children: Mapping[str, Mapping[str, Any] | None], mode: str) -> list[str]:
    """The report's lines for the children found, each with its facts. An absent child is MISSING only where
    ``mode`` needs it: token mode sets no header, so it has no EnvoyFilter by design."""
    lines = []
    for kind, obj in children.items():
        if obj:
            lines.append(f"  {kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}")
            lines += [f"      {fact}" for fact in facts(obj)]
        elif kind == "EnvoyFilter" and mode == "token":
            lines.append(
                f"  {kind}: none, as expected in token mode (the projected token identifies the caller)"
            )
        else:
            lines.append(f"  {kind} MISSING (expected in {mode} mode)")
    return lines


def facts(obj: Mapping[str, Any]) -> list[str]:
    """The key facts of a child: who may reach ml-pipeline with which header; which header is set."""
    spec = obj.get("spec", {})
    lines = []
    if obj.get("kind") == "AuthorizationPolicy":
        target = ",".join(f"{k}={v}" for k, v in (lookup(spec, "selector", "matchLabels") or {}).items())
        for rule in spec.get("rules", []):
            principals = [p for f in rule.get("from", []) for p in lookup(f, "source", "principals") or []]
            conditions = [
                _condition(w.get("key"), w.get("values"), w.get("notValues")) for w in rule.get("when", [])
            ]
            lines.append(f"{spec.get('action')} {', '.join(principals)} → pods {target}")
            lines.append(f"only when {' and '.join(conditions)}")
    elif obj.get("kind") == "EnvoyFilter":
        workloads = ",".join(
            f"{k}={v}" for k, v in (lookup(spec, "workloadSelector", "labels") or {}).items()
        )
        for patch in spec.get("configPatches", []):
            vhost = lookup(patch, "match", "routeConfiguration", "vhost", "name")
            for added in lookup(patch, "patch", "value", "request_headers_to_add") or []:
                header = added.get("header", {})
                mode = added.get("append_action") or ("append" if added.get("append", True) else "overwrite")
                lines.append(f"sets {header.get('key')}: {header.get('value')} ({mode})")
                lines.append(f"on requests from pods {workloads} to {vhost}")
    return lines


def _condition(key: str, values: Sequence[str] | None, not_values: Sequence[str] | None = None) -> str:
    if not_values is not None:
        return f"{key} absent" if list(not_values) == ["*"] else f"{key} not in [{', '.join(not_values)}]"
    values = values or []
    if list(values) == ["*"]:
        return f"{key} present"
    return f"{key} == {values[0]}" if len(values) == 1 else f"{key} in [{', '.join(values)}]"


# -- command line ---------------------------------------------------------------------------------


def down_command(state: Path) -> str:
    flag = "" if state == DEFAULT_STATE_FILE else f" --state {state}"
    return f"python -m e2e.cluster.controlplane{flag} down"


def run_mode(mode: str, arguments: argparse.Namespace, keep: bool, began: float) -> list[str]:
    """One demo run on a control plane of its own; the expected effects that are missing."""
    plane = ControlPlane(keep_run_dir=keep, die_with_parent=not keep, image=arguments.image)
    print(f"\n== identity mode {mode} ==")
    print("Starting etcd, kube-apiserver, kube-controller-manager and Metacontroller on 127.0.0.1 ...")
    with plane:
        print(f"control plane up in {plane.timings['start']:.1f} s: {plane.server}")
        demo = Demo(plane, mode=mode)
        demo.run()
        print("\n".join(demo.report()))
        timings = {"control plane": plane.timings["start"], **demo.timings}
        timings["total"] = time.monotonic() - began
        print("\nTimings: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
        missing = demo.checks.missing
        if missing:
            print(f"FAILED ({mode}): {len(missing)} of {len(demo.checks.results)} expected effects missing:")
            print("\n".join(f"  - {what}" for what in missing))
            plane.report_failure(lines=15)
        else:
            print(f"OK ({mode}): all {len(demo.checks.results)} expected effects present")
        if keep:
            arguments.state.write_text(json.dumps(plane.state(), indent=2))
            plane.detach()
            print(f"\nStill running. export KUBECONFIG={plane.kubeconfig}")
            print(f"Stop it with: {down_command(arguments.state)}")
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the last run's control plane running")
    parser.add_argument(
        "--image", help="run the hooks and the webhook from this image (podman) instead of this checkout"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE_FILE,
        help="state file for --keep, as e2e.cluster.controlplane's",
    )
    parser.add_argument(
        "--identity-mode", choices=IDENTITY_MODES, help="run only this identity mode (default: each in turn)"
    )
    arguments = parser.parse_args(argv)
    modes = [arguments.identity_mode] if arguments.identity_mode else list(IDENTITY_MODES)
    began = time.monotonic()
    if arguments.keep and state_is_live(arguments.state):
        print(
            f"a control plane is already up; stop it first: {down_command(arguments.state)}", file=sys.stderr
        )
        return 1
    # Ctrl-C (even where a shell started us with SIGINT ignored) and a stop request both unwind through
    # the ControlPlane, which stops every process it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    outcome: dict[str, str] = {}
    try:
        for mode in modes:
            missing = run_mode(mode, arguments, arguments.keep and mode == modes[-1], time.monotonic())
            outcome[mode] = f"{len(missing)} expected effects missing" if missing else "OK"
    except MissingBinariesError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything stopped", file=sys.stderr)
        return 130
    except (TimeoutError, KubectlError, RuntimeError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print("\nIdentity modes: " + ", ".join(f"{mode} {result}" for mode, result in outcome.items()))
    if not arguments.keep:
        print(f"Stopped everything ({time.monotonic() - began:.1f} s in all).")
    return 0 if all(result == "OK" for result in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
