"""What doctor read from the cluster, as the API server's JSON (camelCase dicts), and when.

Plain dicts rather than the client's models: the hooks' own pure functions (``hooks.identity``,
``hooks.desired``) take objects in that shape, so the checks reuse them instead of restating the rules,
and tests build snapshots from YAML as the cluster stores it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from doctor.findings import Ref
from webhook.mutations.collector import release

Object = Mapping[str, Any]


@dataclass(frozen=True)
class Unreadable:
    """A read the API server refused (403): the checks that need it cannot be trusted."""

    resource: str
    namespace: str | None
    reason: str


@dataclass(frozen=True)
class Snapshot:
    now: datetime.datetime
    server_version: str | None = None
    webhook_configurations: tuple[Object, ...] = ()
    services: tuple[Object, ...] = ()
    endpoint_slices: tuple[Object, ...] = ()
    secrets: tuple[Object, ...] = ()
    certificates: tuple[Object, ...] = ()
    workloads: tuple[Object, ...] = ()
    """Deployments and StatefulSets: Metacontroller, istiod, ml-pipeline, Katib's controller."""
    decorator_controllers: tuple[Object, ...] = ()
    cluster_roles: tuple[Object, ...] = ()
    cluster_role_bindings: tuple[Object, ...] = ()
    namespaces: tuple[Object, ...] = ()
    profiles: tuple[Object, ...] = ()
    children: tuple[Object, ...] = ()
    """Every object labelled as ours (AuthorizationPolicies, ServiceRoleBindings, EnvoyFilters)."""
    service_accounts: tuple[Object, ...] = ()
    nodes: tuple[Object, ...] = ()
    """For their kubelets' versions."""
    unreadable: tuple[Unreadable, ...] = field(default=())


def metadata(obj: Object) -> Mapping[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def name_of(obj: Object) -> str:
    return str(metadata(obj).get("name", ""))


def namespace_of(obj: Object) -> str | None:
    value = metadata(obj).get("namespace")
    return str(value) if value else None


def labels_of(obj: Object) -> Mapping[str, str]:
    value = metadata(obj).get("labels")
    return value if isinstance(value, Mapping) else {}


def ref(obj: Object, kind: str | None = None) -> Ref:
    return Ref(kind or str(obj.get("kind", "")), name_of(obj), namespace_of(obj))


def find(objects: Iterable[Object], name: str, namespace: str | None = None) -> Object | None:
    """The object named ``name`` (in ``namespace``), if it was read."""
    for obj in objects:
        if name_of(obj) == name and namespace_of(obj) == namespace:
            return obj
    return None


def images(workload: Object) -> list[str]:
    """The container images of a Deployment's or StatefulSet's Pod template."""
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [str(c.get("image", "")) for c in spec.get("containers") or [] if isinstance(c, Mapping)]


def tagged_release(workload: Object, containing: str = "") -> tuple[int, int, int] | None:
    """The release in the tag of its first image (whose name contains ``containing``) that names one; None
    for digests and tags such as a commit."""
    return next((v for i in images(workload) if containing in i and (v := release(i)) is not None), None)


_MINOR_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def minor_version(version: str | None) -> tuple[int, int] | None:
    """``v1.27.16`` -> (1, 27); None when it names no release."""
    match = _MINOR_VERSION.match(version or "")
    return (int(match[1]), int(match[2])) if match else None


def kubernetes_version(snapshot: Snapshot) -> tuple[int, int] | None:
    return minor_version(snapshot.server_version)
