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
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from hooks.app import create_app
from service import config as configuration
from tests.hooks.conftest import namespace, profile, shipped_controller, sync_request

KUBEFLOW = "kubeflow"
ML_PIPELINE = "ml-pipeline"
HTTP_PORT = 8888
GRPC_PORT = 8887
OTHER_SERVICE = "ml-pipeline-visualizationserver"
"""Another Kubeflow service on the same port number: its virtual host shares ml-pipeline's route table."""
NAMESPACE_WITHOUT_PROFILE = "no-profile"


@dataclass(frozen=True)
class Profile:
    namespace: str
    owner: str


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
    Case(
        "legacy-istio",
        "legacy-istio",
        (Profile("erin", "erin@example.com"),),
        translate=False,
        unknown_kinds=("ServiceRoleBinding",),
    ),
)


def hook_objects(case: Case) -> list[dict[str, Any]]:
    """Every object the hooks' HTTP app answers for the case's profiles, in the overlay's types."""
    client = TestClient(create_app(configuration.load(case.settings)))
    controller = shipped_controller(case.overlay)
    objects: list[dict[str, Any]] = []
    for entry in case.profiles:
        body = sync_request(
            controller, namespace(entry.namespace), {entry.namespace: profile(entry.namespace, entry.owner)}
        )
        response = client.post(
            "/sync", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        if response.status_code != 200:
            raise RuntimeError(f"{case.name}/{entry.namespace}: /sync answered {response.status_code}")
        objects += response.json()["attachments"]
    return objects


def spiffe(namespace_name: str, service_account: str) -> str:
    return f"spiffe://cluster.local/ns/{namespace_name}/sa/{service_account}"


def expected_header(case: Case, owner: str) -> Header:
    settings = case.settings
    return Header(
        settings.get("KFEXT_USERID_HEADER", "kubeflow-userid"),
        settings.get("KFEXT_USERID_PREFIX", "") + owner,
    )


def workloads(case: Case) -> list[Workload]:
    """Only a labelled Pod of a profile namespace gets its owner's header, and only towards ml-pipeline."""
    label = {case.settings.get("KFEXT_WORKLOAD_LABEL", "kubeflow-extension"): "true"}
    result = [Workload("labelled", NAMESPACE_WITHOUT_PROFILE, label, ML_PIPELINE, HTTP_PORT, None)]
    for entry in case.profiles:
        header = expected_header(case, entry.owner)
        result += [
            Workload("labelled", entry.namespace, label, ML_PIPELINE, HTTP_PORT, header),
            Workload("labelled", entry.namespace, label, OTHER_SERVICE, HTTP_PORT, None),
            Workload("unlabelled", entry.namespace, {"app": "notebook"}, ML_PIPELINE, HTTP_PORT, None),
        ]
    return result


def calls(case: Case) -> list[Call]:
    """ml-pipeline admits a profile's default-editor over mTLS on the HTTP port with exactly its owner's
    header, and nothing else."""
    result: list[Call] = []
    owners = [entry.owner for entry in case.profiles]
    for entry in case.profiles:
        header = expected_header(case, entry.owner)
        editor = spiffe(entry.namespace, "default-editor")
        others = [o for o in owners if o != entry.owner] or ["someone-else@example.com"]
        mine = {header.name: header.value}
        result += [
            Call(f"{entry.namespace}: editor with the owner's header", editor, mine, HTTP_PORT, True),
            Call(f"{entry.namespace}: same on the gRPC port", editor, mine, GRPC_PORT, False),
            Call(f"{entry.namespace}: no header", editor, {}, HTTP_PORT, False),
            Call(
                f"{entry.namespace}: another owner's header",
                editor,
                {header.name: expected_header(case, others[0]).value},
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
    arguments = parser.parse_args(argv)
    arguments.out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        (arguments.out / f"{case.name}.json").write_text(json.dumps(case_document(case), indent=2))
    print(f"wrote {len(CASES)} cases to {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
