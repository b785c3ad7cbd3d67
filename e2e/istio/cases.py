"""The cases of the Istio translation test (``e2e/istio``, Go): the hooks' answers, and what Envoy must do.

Each case is one Kubeflow install (a shipped overlay, settings) with some profile namespaces. Its objects
are what the hooks' HTTP app answers to a sync request from that overlay's DecoratorController; nothing
here builds an Istio object. Its expectations are written from the case's inputs alone (owner, settings),
so a hook that builds the wrong object fails them:

- ``workloads``: Pods that call out, and the identity header Envoy must set on their requests to a
  service (or ``None``: no header);
- ``calls``: requests arriving at ml-pipeline's sidecar (peer principal, headers, port) and whether its
  RBAC filter must allow them.

The Go test translates the objects with Istio's own pilot code, runs its validating webhook on them, and
checks every expectation against the generated Envoy configuration. Add a case by appending to
``CASES`` (or a request to ``calls``); ``python -m e2e.istio.cases OUT_DIR`` writes one JSON file each.
With ``--legacy`` it writes only the cases of the legacy overlay, translated, for Istio 1.5
(``e2e/istio-legacy``), which still knows ServiceRoleBinding.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from hooks.app import create_app
from hooks.identity import MODE_ANNOTATION
from service import config as configuration
from tests.hooks.conftest import namespace, profile, shipped_controller, sync_request

KUBEFLOW = "kubeflow"
ML_PIPELINE = "ml-pipeline"
HTTP_PORT = 8888
GRPC_PORT = 8887
OTHER_SERVICE = "ml-pipeline-visualizationserver"
"""Another Kubeflow service on the same port number: its virtual host shares ml-pipeline's route table."""
NAMESPACE_WITHOUT_PROFILE = "no-profile"
LEGACY_OVERLAY = "legacy-istio"
"""The overlay for Istio 1.3-1.5, whose ServiceRoleBinding current Istio no longer knows."""
BEARER = {"authorization": "Bearer x"}
"""A token; Istio only checks that the header is there, KFP checks the token itself."""


@dataclass(frozen=True)
class Profile:
    namespace: str
    owner: str
    mode: str | None = None
    """The Namespace's identity-mode annotation (None: none, the configuration's mode applies)."""
    leaving_header: bool = False
    """The namespace was in header mode: the EnvoyFilter the hooks answered then is still observed."""


@dataclass(frozen=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True)
class Workload:
    """A Pod calling ``service`` (in the Kubeflow namespace) on ``port``, and the header it must get."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    service: str
    port: int
    header: Header | None


@dataclass(frozen=True)
class Call:
    """A request reaching ml-pipeline's sidecar. ``principal`` is the peer's SPIFFE id (None: plaintext)."""

    name: str
    principal: str | None
    headers: Mapping[str, str]
    port: int
    allowed: bool


@dataclass(frozen=True)
class Case:
    name: str
    overlay: str
    """Directory under metacontroller/ whose DecoratorController calls the hooks."""
    profiles: tuple[Profile, ...]
    settings: Mapping[str, str] = field(default_factory=dict)
    """``KFEXT_*`` settings of the hooks."""
    translate: bool = True
    """False where current Istio cannot translate the objects (validation only)."""
    unknown_kinds: tuple[str, ...] = ()
    """Kinds current Istio no longer knows; its webhook must reject them as unrecognized."""


CASES = (
    Case(
        "current-istio",
        "",
        (
            Profile("alice", "alice+kubeflow@example.com"),
            Profile("ml-team", "First.Last@Corp.Example.ORG"),
        ),
    ),
    Case("istio-1.6-1.14", "istio-1.6-1.14", (Profile("carol", "carol.o'neil+ml@example.com"),)),
    Case(
        "iap-prefix-and-header",
        "",
        (Profile("dave", "Dave.Jones@example.com"),),
        settings={
            "KFEXT_USERID_HEADER": "x-goog-authenticated-user-email",
            "KFEXT_USERID_PREFIX": "accounts.google.com:",
        },
    ),
    # Token and both modes. Each case keeps a namespace in header mode, so that the header check has a
    # header name to look for on every workload, and the modes' policies meet in one mesh.
    Case(
        "identity-token",
        "",
        (
            Profile("frank", "frank@example.com"),
            Profile("gina", "gina@example.com"),
            Profile("hank", "hank@example.com", mode="header"),
            Profile("nora", "nora@example.com", leaving_header=True),
        ),
        settings={"KFEXT_IDENTITY_MODE": "token"},
    ),
    Case(
        "identity-by-annotation",
        "",
        (
            Profile("ivy", "ivy@example.com", mode="both"),
            Profile("jack", "jack@example.com", mode="token"),
            Profile("kate", "kate@example.com"),
        ),
    ),
    Case(
        "identity-both-iap",
        "",
        (Profile("leo", "Leo@example.com"), Profile("mia", "mia@example.com", mode="header")),
        settings={
            "KFEXT_IDENTITY_MODE": "both",
            "KFEXT_USERID_HEADER": "x-goog-authenticated-user-email",
            "KFEXT_USERID_PREFIX": "accounts.google.com:",
        },
    ),
    Case(
        "legacy-istio",
        LEGACY_OVERLAY,
        (Profile("erin", "erin@example.com"),),
        translate=False,
        unknown_kinds=("ServiceRoleBinding",),
    ),
)


def legacy_cases() -> tuple[Case, ...]:
    """The legacy overlay's cases as Istio 1.5 sees them: every kind known, and translated."""
    return tuple(replace(c, translate=True, unknown_kinds=()) for c in CASES if c.overlay == LEGACY_OVERLAY)


def hook_objects(case: Case) -> list[dict[str, Any]]:
    """Every object the hooks' HTTP app answers for the case's profiles, in the overlay's types."""
    client = TestClient(create_app(configuration.load(case.settings)))
    controller = shipped_controller(case.overlay)
    objects: list[dict[str, Any]] = []
    for entry in case.profiles:
        observed: dict[str, Any] = {}
        if entry.leaving_header:
            for obj in sync(client, controller, case, entry, "header", {}):
                if obj["kind"] == "EnvoyFilter":
                    key = f"EnvoyFilter.{obj['apiVersion']}"
                    observed.setdefault(key, {})[obj["metadata"]["name"]] = obj
            if not observed:
                raise RuntimeError(f"{case.name}/{entry.namespace}: no EnvoyFilter in header mode")
        objects += sync(client, controller, case, entry, entry.mode, observed)
    return objects


def sync(
    client: TestClient,
    controller: dict[str, Any],
    case: Case,
    entry: Profile,
    mode: str | None,
    observed: dict[str, Any],
) -> list[dict[str, Any]]:
    """The hooks' answer for one profile namespace, annotated with ``mode`` (None: not annotated)."""
    user_namespace = namespace(entry.namespace)
    if mode is not None:
        user_namespace["metadata"]["annotations"][MODE_ANNOTATION] = mode
    body = sync_request(
        controller, user_namespace, {entry.namespace: profile(entry.namespace, entry.owner)}, observed
    )
    response = client.post("/sync", content=json.dumps(body), headers={"content-type": "application/json"})
    if response.status_code != 200:
        raise RuntimeError(f"{case.name}/{entry.namespace}: /sync answered {response.status_code}")
    attachments: list[dict[str, Any]] = response.json()["attachments"]
    return attachments


def spiffe(namespace_name: str, service_account: str) -> str:
    return f"spiffe://cluster.local/ns/{namespace_name}/sa/{service_account}"


def expected_header(case: Case, owner: str) -> Header:
    settings = case.settings
    return Header(
        settings.get("KFEXT_USERID_HEADER", "kubeflow-userid"),
        settings.get("KFEXT_USERID_PREFIX", "") + owner,
    )


def identity_mode(case: Case, entry: Profile) -> str:
    """The namespace's annotation, else the configuration's mode, else the default."""
    return entry.mode or case.settings.get("KFEXT_IDENTITY_MODE", "header")


def header_mode(case: Case, entry: Profile) -> bool:
    return identity_mode(case, entry) in ("header", "both")


def admits_header(case: Case, entry: Profile) -> bool:
    """Header or both mode; and, leaving header mode, while its EnvoyFilter may still set the header."""
    return header_mode(case, entry) or entry.leaving_header


def token_mode(case: Case, entry: Profile) -> bool:
    return identity_mode(case, entry) in ("token", "both")


def workloads(case: Case) -> list[Workload]:
    """Only a labelled Pod of a profile namespace in header or both mode gets its owner's header, and only
    towards ml-pipeline; in token mode nothing sets it."""
    label = {case.settings.get("KFEXT_WORKLOAD_LABEL", "kubeflow-extension"): "true"}
    result = [Workload("labelled", NAMESPACE_WITHOUT_PROFILE, label, ML_PIPELINE, HTTP_PORT, None)]
    for entry in case.profiles:
        header = expected_header(case, entry.owner) if header_mode(case, entry) else None
        result += [
            Workload("labelled", entry.namespace, label, ML_PIPELINE, HTTP_PORT, header),
            Workload("labelled", entry.namespace, label, OTHER_SERVICE, HTTP_PORT, None),
            Workload("unlabelled", entry.namespace, {"app": "notebook"}, ML_PIPELINE, HTTP_PORT, None),
        ]
    return result


def calls(case: Case) -> list[Call]:
    """ml-pipeline admits a profile's default-editor over mTLS only: in header (and both) mode on the HTTP
    port with exactly its owner's header; in token (and both) mode, on either port, with an
    `authorization` header and no identity header at all. Nothing else."""
    result: list[Call] = []
    owners = [entry.owner for entry in case.profiles]
    for entry in case.profiles:
        other = next((o for o in owners if o != entry.owner), "someone-else@example.com")
        result += header_calls(case, entry, other) + token_calls(case, entry, other)
    return result


def header_calls(case: Case, entry: Profile, other_owner: str) -> list[Call]:
    """Requests that identify by header alone; only the first is allowed, and only where admits_header."""
    header = expected_header(case, entry.owner)
    editor = spiffe(entry.namespace, "default-editor")
    mine = {header.name: header.value}
    result = [
        Call(
            f"{entry.namespace}: editor with the owner's header",
            editor,
            mine,
            HTTP_PORT,
            admits_header(case, entry),
        ),
        Call(f"{entry.namespace}: same on the gRPC port", editor, mine, GRPC_PORT, False),
        Call(f"{entry.namespace}: no header", editor, {}, HTTP_PORT, False),
        Call(
            f"{entry.namespace}: another owner's header",
            editor,
            {header.name: expected_header(case, other_owner).value},
            HTTP_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: the owner's header in another case",
            editor,
            {header.name: header.value.swapcase()},
            HTTP_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: another namespace's editor with this header",
            spiffe(NAMESPACE_WITHOUT_PROFILE, "default-editor"),
            mine,
            HTTP_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: another service account of the namespace",
            spiffe(entry.namespace, "default-viewer"),
            mine,
            HTTP_PORT,
            False,
        ),
        Call(f"{entry.namespace}: plaintext with the owner's header", None, mine, HTTP_PORT, False),
    ]
    if header.value != entry.owner:
        result.append(
            Call(
                f"{entry.namespace}: the owner without the prefix",
                editor,
                {header.name: entry.owner},
                HTTP_PORT,
                False,
            )
        )
    return result


def token_calls(case: Case, entry: Profile, other_owner: str) -> list[Call]:
    """Requests with a bearer token. KFP authenticates the token from gRPC metadata on both of its ports,
    so token mode admits either; with any identity header it is the header that must be right (header or
    both mode, HTTP port), since KFP tries the header first."""
    header = expected_header(case, entry.owner)
    editor = spiffe(entry.namespace, "default-editor")
    token = token_mode(case, entry)
    owners_header = {**BEARER, header.name: header.value}
    return [
        Call(f"{entry.namespace}: editor with a token, no identity header", editor, BEARER, HTTP_PORT, token),
        Call(f"{entry.namespace}: a token on the gRPC port", editor, BEARER, GRPC_PORT, token),
        Call(
            f"{entry.namespace}: a token and the owner's header",
            editor,
            owners_header,
            HTTP_PORT,
            admits_header(case, entry),
        ),
        Call(
            f"{entry.namespace}: a token and the owner's header on the gRPC port",
            editor,
            owners_header,
            GRPC_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: a token and another owner's header",
            editor,
            {**BEARER, header.name: expected_header(case, other_owner).value},
            HTTP_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: a token and another owner's header on the gRPC port",
            editor,
            {**BEARER, header.name: expected_header(case, other_owner).value},
            GRPC_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: a token and an empty identity header",
            editor,
            {**BEARER, header.name: ""},
            HTTP_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: another namespace's editor with a token",
            spiffe(NAMESPACE_WITHOUT_PROFILE, "default-editor"),
            BEARER,
            HTTP_PORT,
            False,
        ),
        Call(
            f"{entry.namespace}: another service account of the namespace with a token",
            spiffe(entry.namespace, "default-viewer"),
            BEARER,
            HTTP_PORT,
            False,
        ),
        Call(f"{entry.namespace}: plaintext with a token", None, BEARER, HTTP_PORT, False),
    ]


def case_document(case: Case) -> dict[str, Any]:
    """What the Go test reads for one case."""
    return {
        "name": case.name,
        "translate": case.translate,
        "unknownKinds": list(case.unknown_kinds),
        "kubeflowNamespace": KUBEFLOW,
        "services": [
            {"name": ML_PIPELINE, "ports": {"http-apiserver": HTTP_PORT, "grpc-apiserver": GRPC_PORT}},
            {"name": OTHER_SERVICE, "ports": {"http": HTTP_PORT}},
        ],
        "objects": hook_objects(case),
        "workloads": [asdict(w) for w in workloads(case)] if case.translate else [],
        "calls": [asdict(c) for c in calls(case)] if case.translate else [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.istio.cases", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for <case>.json files (created)")
    parser.add_argument("--legacy", action="store_true", help="only the legacy overlay's cases (Istio 1.5)")
    arguments = parser.parse_args(argv)
    arguments.out.mkdir(parents=True, exist_ok=True)
    cases = legacy_cases() if arguments.legacy else CASES
    for case in cases:
        (arguments.out / f"{case.name}.json").write_text(json.dumps(case_document(case), indent=2))
    print(f"wrote {len(cases)} cases to {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
