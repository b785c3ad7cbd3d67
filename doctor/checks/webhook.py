"""The MutatingWebhookConfiguration as shipped, the Service it calls, and the webhooks that run after it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from doctor import codes, services, shipped
from doctor.findings import Finding, Ref
from doctor.selectors import matches
from doctor.snapshot import Object, Snapshot, find, kubernetes_version, labels_of, name_of
from service.config import Config

KIND = "MutatingWebhookConfiguration"
COMPARED = ("rules", "namespaceSelector", "objectSelector", "matchConditions")
"""What decides which objects reach which path; timeouts and the like may be tuned without harm."""
MATCH_CONDITIONS_FIELD, MATCH_CONDITIONS_SINCE = (1, 27), (1, 28)
"""The field came in 1.27 behind the alpha gate AdmissionWebhookMatchConditions, on by default from 1.28.
With the gate off, kube-apiserver 1.27 stores the configuration without its matchConditions and says
nothing: measured on 1.27.16 (e2e/test_doctor.py)."""


def configuration_name() -> str:
    return str(shipped.webhook_configuration()["metadata"]["name"])


def ours(snapshot: Snapshot) -> Object | None:
    return find(snapshot.webhook_configurations, configuration_name())


def our_ref() -> Ref:
    return Ref(KIND, configuration_name())


def entries(configuration: Object) -> list[Mapping[str, Any]]:
    return [e for e in configuration.get("webhooks") or [] if isinstance(e, Mapping)]


def path(entry: Mapping[str, Any]) -> str:
    client = entry.get("clientConfig") or {}
    if "service" in client:
        return str(client["service"].get("path") or "/")
    return urlsplit(str(client.get("url", ""))).path or "/"


def _field(entry: Mapping[str, Any], field: str) -> Any:
    # kube-apiserver stores an absent selector as {} and an absent list as none at all.
    return entry.get(field) or ({} if field.endswith("Selector") else [])


def _dropped_by_the_server(snapshot: Snapshot, expected: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    version = kubernetes_version(snapshot)
    return (
        version is not None
        and version < MATCH_CONDITIONS_SINCE
        and bool(expected.get("matchConditions"))
        and not live.get("matchConditions")
    )


def _paired(live: Object) -> list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]:
    """Each shipped entry with the live entry of its name (None: missing)."""
    by_name = {str(e.get("name")): e for e in entries(live)}
    return [(expected, by_name.get(str(expected["name"]))) for expected in shipped.webhook_entries()]


def match_conditions_dropped(snapshot: Snapshot) -> bool:
    """Our configuration lost its matchConditions to a server that does not know them (KFX401)."""
    live = ours(snapshot)
    return live is not None and any(
        entry is not None and _dropped_by_the_server(snapshot, expected, entry)
        for expected, entry in _paired(live)
    )


def _compare(expected: Mapping[str, Any], live: Mapping[str, Any], excused: tuple[str, ...]) -> list[Finding]:
    name, ref = expected["name"], our_ref()
    findings = []
    if live.get("failurePolicy") != expected["failurePolicy"]:
        findings.append(
            codes.WEBHOOK_FAILURE_POLICY.at(
                ref, f"{name}: failurePolicy {live.get('failurePolicy')}, shipped {expected['failurePolicy']}"
            )
        )
    differing = [
        field for field in COMPARED if field not in excused and _field(live, field) != _field(expected, field)
    ]
    if path(live) != path(expected):
        differing.append(f"path {path(live)} (shipped {path(expected)})")
    if differing:
        findings.append(
            codes.WEBHOOK_ROUTING.at(ref, f"{name}: {', '.join(differing)} differ from the shipped")
        )
    return findings


def check_configuration(snapshot: Snapshot, config: Config) -> list[Finding]:
    """Present, and each shipped entry there with the shipped failure policy, routing and caBundle."""
    live = ours(snapshot)
    if live is None:
        return [codes.WEBHOOK_CONFIGURATION_MISSING.at(our_ref(), f"{KIND} {configuration_name()} not found")]
    findings = []
    for expected, entry in _paired(live):
        if entry is None:
            findings.append(codes.WEBHOOK_ENTRY_MISSING.at(our_ref(), f"entry {expected['name']} is missing"))
            continue
        # Conditions the server dropped are KFX401's: the cause, reported once, not a drift per entry.
        excused = ("matchConditions",) if _dropped_by_the_server(snapshot, expected, entry) else ()
        findings += _compare(expected, entry, excused)
        if not (entry.get("clientConfig") or {}).get("caBundle"):
            findings.append(codes.CA_BUNDLE_MISSING.at(our_ref(), f"{expected['name']}: no caBundle"))
    return findings


def called_services(configuration: Object) -> set[tuple[str, str]]:
    """(namespace, name) of every Service the entries call; entries with a URL call none."""
    return {
        (str(s.get("namespace")), str(s.get("name")))
        for e in entries(configuration)
        if (s := (e.get("clientConfig") or {}).get("service"))
    }


def check_service(snapshot: Snapshot, config: Config) -> list[Finding]:
    live = ours(snapshot)
    findings = []
    for namespace, name in sorted(called_services(live) if live else ()):
        problem = services.problem(snapshot, namespace, name)
        if problem:
            findings.append(codes.WEBHOOK_SERVICE_UNREADY.at(Ref("Service", name, namespace), problem))
    return findings


def _sees_pod_creates(entry: Mapping[str, Any]) -> bool:
    return any(
        set(rule.get("apiGroups") or []) & {"", "*"}
        and set(rule.get("resources") or []) & {"pods", "*"}
        and set(rule.get("operations") or []) & {"CREATE", "*"}
        for rule in entry.get("rules") or []
    )


def check_later_webhooks(snapshot: Snapshot, config: Config) -> list[Finding]:
    """Configurations are called in name order, so one sorting after ours sees our Pods last."""
    profiles = [labels_of(n) for n in snapshot.namespaces if shipped.profile_namespace(labels_of(n))]
    findings = []
    for configuration in snapshot.webhook_configurations:
        if name_of(configuration) <= configuration_name():
            continue
        for entry in entries(configuration):
            if _sees_pod_creates(entry) and any(matches(entry.get("namespaceSelector"), p) for p in profiles):
                findings.append(
                    codes.LATER_WEBHOOK.at(
                        Ref(KIND, name_of(configuration)),
                        f"{entry.get('name')} mutates Pods in profile namespaces after ours",
                    )
                )
    return findings
