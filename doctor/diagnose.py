"""Every check over one snapshot, and the facts an engineer wants next to the findings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping

from doctor import codes, profiles, shipped
from doctor.checks import certificate, metacontroller, namespaces, versions, webhook
from doctor.findings import Finding, Ref
from doctor.snapshot import Snapshot, images, labels_of, name_of
from service.config import Config

Check = Callable[[Snapshot, Config], list[Finding]]

CHECKS: tuple[Check, ...] = (
    webhook.check_configuration,
    certificate.check_certificate,
    webhook.check_service,
    webhook.check_later_webhooks,
    metacontroller.check_running,
    metacontroller.check_decorator_controller,
    metacontroller.check_permissions,
    metacontroller.check_version,
    namespaces.check_mode_label,
    namespaces.check_children,
    namespaces.check_ambient,
    namespaces.check_service_account,
    namespaces.check_katib_label,
    versions.check_kubernetes,
    versions.check_kfp_for_token,
    versions.check_istio,
    versions.check_native_sidecars,
    versions.check_katib,
)


def limited(snapshot: Snapshot, only: Collection[str]) -> Snapshot:
    """The snapshot with only the profile namespaces named in ``only`` (all when empty)."""
    if not only:
        return snapshot
    kept = tuple(
        n for n in snapshot.namespaces if name_of(n) in only or not shipped.profile_namespace(labels_of(n))
    )
    return dataclasses.replace(snapshot, namespaces=kept)


def unreadable(snapshot: Snapshot) -> list[Finding]:
    return [codes.UNREADABLE.at(Ref(u.resource, "*", u.namespace), u.reason) for u in snapshot.unreadable]


def diagnose(snapshot: Snapshot, config: Config, only: Collection[str] = ()) -> list[Finding]:
    scoped = limited(snapshot, only)
    findings = unreadable(scoped) + [finding for check in CHECKS for finding in check(scoped, config)]
    unique = list(dict.fromkeys(findings))  # two DecoratorControllers may report the same gap
    return sorted(unique, key=lambda f: (f.code, f.object))


def facts(snapshot: Snapshot, config: Config) -> Mapping[str, str | int | None]:
    """What was read, for the report's head: versions and how many namespaces were looked at."""
    mc = metacontroller.metacontrollers(snapshot)

    def image(name: str) -> str | None:
        found = versions.workload(snapshot.workloads, name)
        return next(iter(images(found)), None) if found else None

    return {
        "kubernetes": snapshot.server_version,
        "metacontroller": images(mc[0])[0] if mc and images(mc[0]) else None,
        "istiod": image(versions.ISTIOD),
        "ml-pipeline": image(versions.ML_PIPELINE),
        "katib-controller": image(namespaces.KATIB_CONTROLLER),
        "profile namespaces": sum(1 for _ in profiles.served_namespaces(snapshot, config)),
    }
