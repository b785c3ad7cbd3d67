"""The ``kubeflow-extension`` command: offline previews of what the services would do."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, desired
from service import config as configuration


class UsageError(Exception):
    """A file given on the command line cannot be used; the message says why."""


def _load_yaml(path: str, kind: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"{path}: {error}") from None
    if not isinstance(document, dict) or document.get("kind") != kind:
        raise UsageError(f"{path}: expected a {kind} object")
    return document


def sync_command(args: argparse.Namespace, config: configuration.Config) -> str:
    """The attachments the hooks would return for the namespace, as YAML documents."""
    namespace = _load_yaml(args.namespace, "Namespace")
    name = (namespace.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{args.namespace}: the Namespace has no metadata.name")
    profile = _load_yaml(args.profile, "Profile") if args.profile else None
    profile_name = (profile or {}).get("metadata", {}).get("name", name)
    if profile is not None and profile_name != name:
        raise UsageError(f"{args.profile}: Profile {profile_name!r} does not belong to namespace {name!r}")
    types = LEGACY_ISTIO if args.legacy_istio else CURRENT_ISTIO
    attachments = desired(name, profile, types, config)
    return yaml.safe_dump_all(attachments, sort_keys=True) if attachments else "# no attachments\n"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kubeflow-extension", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="print the Istio objects the hooks would create for a namespace")
    sync.add_argument("--namespace", required=True, help="YAML file of the Namespace")
    sync.add_argument("--profile", help="YAML file of its Profile (omit: no Profile exists)")
    sync.add_argument("--legacy-istio", action="store_true", help="Istio < 1.6: ServiceRoleBinding")
    sync.set_defaults(run=sync_command)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = configuration.load()
        sys.stdout.write(args.run(args, config))
    except (UsageError, configuration.ConfigError) as error:
        print(f"kubeflow-extension {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
