"""The profile namespaces the hooks serve, as the checks see them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from doctor import shipped
from doctor.findings import Ref
from doctor.snapshot import Object, Snapshot, find, labels_of, name_of
from hooks.desired import profile_owner, served
from service.config import Config


@dataclass(frozen=True)
class ProfileNamespace:
    namespace: Object
    profile: Object | None

    @property
    def name(self) -> str:
        return name_of(self.namespace)

    @property
    def ref(self) -> Ref:
        return Ref("Namespace", self.name)


def served_namespaces(snapshot: Snapshot, config: Config) -> Iterator[ProfileNamespace]:
    """Profile namespaces the hooks grant access to (a Profile with an owner, not Kubeflow's own)."""
    for namespace in snapshot.namespaces:
        if not shipped.profile_namespace(labels_of(namespace)):
            continue
        profile = find(snapshot.profiles, name_of(namespace))
        if served(name_of(namespace), profile_owner(profile), config):
            yield ProfileNamespace(namespace, profile)
