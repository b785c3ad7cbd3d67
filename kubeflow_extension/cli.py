"""The ``kubeflow-extension`` command: serve either service, preview offline what they would do, or
diagnose a live cluster (``doctor``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from hooks import identity
from hooks.desired import CURRENT_ISTIO, HEADER_FORMS, LEGACY_ISTIO, desired
from service import config as configuration
from service import logs
from service.certificate_rotation import DEFAULT_SECRET
from service.config import IDENTITY_MODES
from service.http import ClientError
from service.logs import LOG_FORMATS
from service.serve import GRACEFUL_TIMEOUT_SECONDS, SHUTDOWN_DELAY_SECONDS, TLSRequiredError, serve

if TYPE_CHECKING:
    from doctor.suppress import Suppression

APPS = {"hooks": "hooks.app:app", "webhook": "webhook.app:app"}
DEFAULT_PORTS = {"hooks": 8080, "webhook": 8443}


class UsageError(Exception):
    """A file given on the command line cannot be used; the message says why."""


class UnreachableError(Exception):
    """doctor could not read the cluster at all; distinct from its findings' exit statuses 1 and 2."""


UNREACHABLE_STATUS = 3
USAGE_STATUS = 2
DOCTOR_USAGE_STATUS = 4
"""doctor's 2 means "warnings only", so a script must be able to tell a mistyped flag or a bad
configuration from it."""


class Parser(argparse.ArgumentParser):
    """argparse, with the exit status of a usage error chosen per command (argparse's own is 2): a
    command's ``set_defaults(usage_status=...)``, which main() also reads for the errors found later."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.get_default("usage_status") or USAGE_STATUS, f"{self.prog}: error: {message}\n")


def _load_yaml(path: str, *kinds: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(sys.stdin if path == "-" else Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"{path}: {error}") from None
    if not isinstance(document, dict) or document.get("kind") not in kinds:
        raise UsageError(f"{path}: expected a {' or '.join(kinds)} object")
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
    try:
        chosen = identity.resolve(config, identity.override(namespace, profile))
        on_ambient = identity.ambient(namespace)
        attachments = desired(
            name,
            profile,
            types,
            config,
            header_form=args.envoy_header_form,
            identity=chosen,
            on_ambient=on_ambient,
        )
    except ClientError as error:
        raise UsageError(error.message) from None
    print(f"identity mode: {chosen.mode} (from the {chosen.source})", file=sys.stderr)
    notice = identity.namespace_annotations(chosen, on_ambient, None, served=bool(attachments))
    for key, value in (notice or {}).items():
        print(f"namespace annotation {key}: {value}", file=sys.stderr)
    return yaml.safe_dump_all(attachments, sort_keys=True) if attachments else "# no attachments\n"


def mutate_command(args: argparse.Namespace, config: configuration.Config) -> str:
    """What the webhook would make of a Pod or Job: the object, or with --patch the JSON Patch."""
    from webhook.mutate import mutate_object

    mutated, patch, warnings = mutate_object(_load_yaml(args.file, "Pod", "Job"), config)
    print(f"identity mode: {config.identity_mode} (from the configuration)", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.patch:
        return json.dumps(patch, indent=2) + "\n"
    return yaml.safe_dump(mutated, sort_keys=False)


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace(given: str | None) -> str:
    if given:
        return given
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        raise UsageError("--namespace is needed outside a cluster") from None


def serve_command(args: argparse.Namespace, config: configuration.Config) -> str:
    """Serve one of the apps until SIGTERM; the webhook only over TLS (the API server requires it)."""
    certfile, keyfile = args.certfile, args.keyfile
    if args.self_managed_certificates:
        if args.service != "webhook":
            raise UsageError("--self-managed-certificates is for the webhook")
        from service import certificate_sync

        logs.configure(args.log_format)
        namespace = _own_namespace(args.namespace)
        directory = Path(args.cert_dir)
        certificate_sync.keep_current(
            certificate_sync.Target(
                namespace=namespace,
                secret=args.secret,
                webhook_configuration=args.webhook_configuration,
                dns_names=tuple(certificate_sync.dns_names(args.service_name, namespace)),
            ),
            directory,
            interval=args.renew_interval,
        )
        certfile, keyfile = str(directory / "tls.crt"), str(directory / "tls.key")
    serve(
        APPS[args.service],
        args.host,
        args.port or DEFAULT_PORTS[args.service],
        certfile=certfile,
        keyfile=keyfile,
        log_format=args.log_format,
        require_tls=args.service == "webhook",
        shutdown_delay=args.shutdown_delay,
        graceful_timeout=args.graceful_timeout,
    )
    return ""


def doctor_command(args: argparse.Namespace, config: configuration.Config) -> tuple[str, int]:
    """Read the cluster, run every check; the exit status says whether anything is wrong."""
    from doctor import read, report, suppress
    from doctor.diagnose import diagnose, facts, limited
    from doctor.findings import exit_status

    try:
        snapshot = read.snapshot(read.api_client(args.kubeconfig, args.context), config)
    except read.ReadError as error:
        raise UnreachableError(str(error)) from None
    findings, suppressed = suppress.split(diagnose(snapshot, config, args.namespace), args.suppress)
    for unused in suppress.unmatched(args.suppress, suppressed):
        print(
            f"kubeflow-extension doctor: --suppress {unused.code}={unused.object} matched no finding",
            file=sys.stderr,
        )
    render = report.as_json if args.output == "json" else report.as_text
    read_facts = facts(limited(snapshot, args.namespace), config)
    return render(findings, read_facts, suppressed), exit_status(findings)


def suppression(text: str) -> Suppression:
    """argparse's type for --suppress: its ValueError becomes a usage error naming the value."""
    from doctor.suppress import parse

    try:
        return parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


IDENTITY_HELP = "instead of the configuration's identity_mode (a namespace or profile annotation still wins)"


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="kubeflow-extension", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    serve = commands.add_parser("serve", help="serve the hooks or the webhook")
    serve.add_argument("service", choices=sorted(APPS))
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")  # noqa: S104
    serve.add_argument("--port", type=int, help="port (default: hooks 8080, webhook 8443)")
    serve.add_argument("--certfile", help="PEM certificate; re-read when it changes (required for webhook)")
    serve.add_argument("--keyfile", help="PEM private key (default: in the certificate file)")
    serve.add_argument("--log-format", choices=LOG_FORMATS, default="json")
    serve.add_argument(
        "--shutdown-delay",
        type=float,
        default=SHUTDOWN_DELAY_SECONDS,
        metavar="SECONDS",
        help="on SIGTERM, keep serving this long (readiness failing, each connection closed after its "
        "answer) while the Service stops routing here; 0: stop at once (default: %(default)s)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=GRACEFUL_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="then, how long requests in flight may still take (default: %(default)s)",
    )
    managed = serve.add_argument_group(
        "self-managed certificates (instead of cert-manager): a CA and serving pair in one Secret, "
        "and the webhook configuration's caBundle, kept current by the webhook itself"
    )
    managed.add_argument("--self-managed-certificates", action="store_true")
    managed.add_argument(
        "--cert-dir", default="/var/run/kubeflow-extension/tls", help="where to write tls.crt/key"
    )
    managed.add_argument("--secret", default=DEFAULT_SECRET)
    managed.add_argument("--webhook-configuration", default="kubeflow-extension")
    managed.add_argument("--service-name", default="kubeflow-extension-webhook", help="the webhook's Service")
    managed.add_argument("--namespace", help="the webhook's namespace (default: its service account's)")
    managed.add_argument("--renew-interval", type=float, default=3600.0, help="seconds between checks")
    serve.set_defaults(run=serve_command)
    mutate = commands.add_parser("mutate", help="print what the webhook would do to a Pod or Job")
    mutate.add_argument("-f", "--file", required=True, help="YAML file of a Pod or Job ('-': stdin)")
    mutate.add_argument("--patch", action="store_true", help="print the JSON Patch instead of the object")
    mutate.add_argument("--identity-mode", choices=IDENTITY_MODES, help=IDENTITY_HELP)
    mutate.set_defaults(run=mutate_command)
    sync = commands.add_parser("sync", help="print the Istio objects the hooks would create for a namespace")
    sync.add_argument("--namespace", required=True, help="YAML file of the Namespace")
    sync.add_argument("--profile", help="YAML file of its Profile (omit: no Profile exists)")
    sync.add_argument("--legacy-istio", action="store_true", help="Istio < 1.6: ServiceRoleBinding")
    sync.add_argument(
        "--envoy-header-form",
        choices=sorted(HEADER_FORMS),
        help="as the controller's annotation: `append` for Istio < 1.15 (default: by Istio era)",
    )
    sync.add_argument("--identity-mode", choices=IDENTITY_MODES, help=IDENTITY_HELP)
    sync.set_defaults(run=sync_command)
    doctor = commands.add_parser(
        "doctor",
        help="check a live cluster; exit 0 all pass, 1 any error, 2 warnings only, 3 cluster unreadable, "
        "4 called wrong (a usage or configuration error)",
    )
    doctor.add_argument(
        "--kubeconfig", help="as kubectl's (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    doctor.add_argument("--context", help="kubeconfig context (default: the current one)")
    doctor.add_argument(
        "-n", "--namespace", action="append", default=[], help="only this profile namespace (repeatable)"
    )
    doctor.add_argument("-o", "--output", choices=("text", "json"), default="text")
    doctor.add_argument(
        "--suppress",
        action="append",
        default=[],
        type=suppression,
        metavar="CODE[=OBJECT]",
        help="a finding judged and accepted, e.g. KFX205 or 'KFX304=Namespace alice': shown apart, not "
        "counted in the exit status (repeatable)",
    )
    doctor.set_defaults(run=doctor_command, usage_status=DOCTOR_USAGE_STATUS)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = configuration.load()
        if getattr(args, "identity_mode", None):
            config = dataclasses.replace(config, identity_mode=args.identity_mode)
        output = args.run(args, config)
    except UnreachableError as error:
        print(f"kubeflow-extension {args.command}: {error}", file=sys.stderr)
        return UNREACHABLE_STATUS
    except (UsageError, configuration.ConfigError, TLSRequiredError) as error:
        print(f"kubeflow-extension {args.command}: {error}", file=sys.stderr)
        return int(getattr(args, "usage_status", USAGE_STATUS))
    text, status = (output, 0) if isinstance(output, str) else output
    sys.stdout.write(text)
    return status
