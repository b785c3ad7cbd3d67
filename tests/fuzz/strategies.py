"""Structure-aware generators: AdmissionReviews and Metacontroller sync requests in their real shapes, with
hostile values where a client (or a bug upstream) could put them, and helpers to aim a value at any path.

Everything here is plain data in, plain data out; the properties live in ``checks.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.hooks.conftest import namespace, profile, shipped_controller, sync_request
from tests.webhook import katib_objects
from webhook.mutations import COLLECTOR_CONTAINERS, collector, kale

Path = tuple[str | int, ...]

# -- values -----------------------------------------------------------------------------------------

KALE_PROGRAM = 'python3 -u -c "from kale.common.kfputils import create_and_wait_kfp_run; x()"'
SPECIAL_STRINGS = [
    "",
    " ",
    "true",
    "false",
    "True",
    "1",
    "null",
    "-w",
    "-w=true",
    "-w=false",
    "--w",
    "--w=1",
    "-w=",
    "--",
    "-",
    "-c",
    "sh",
    "python3",
    "$(",
    "$(POD_NAME)",
    "$$",
    "$$$$",
    "'",
    '"',
    "\\",
    "`id`",
    "$(id)",
    "a;b|c&&d",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "~",
    "/",
    "~0",
    "~1",
    "a/b~c",
    "/~/~1~0",
    "sidecar.istio.io/inject",
    "kubeflow-extension",
    "notebook-name",
    "metrics-logger-and-collector",
    "metrics-collector",
    "istio-proxy",
    "Always",
    "create_and_wait_kfp_run",
    KALE_PROGRAM,
    katib_objects.kale_command("0.6"),
    katib_objects.kale_command("0.7"),
    kale.MARKER,
    collector.MARKER,
    collector.MARKER + "\necho hi\n",
    "from kfputils import create_and_wait_kfp_run",
    "é",
    "\U0001d518\U0001d52b\U0001d526",  # mathematical fraktur letters
    "\u202eevil",
    "\u200b",
    "\ufeff",
    "日本語",
    "a" * 300,
    "kubeflow.org/v1beta1",
    "kubeflow.org/v1alpha3",
    "Trial",
    "Job",
    "Pod",
    "v1",
    "batch/v1",
    katib_objects.COLLECTOR_IMAGES["v0.19"],
    katib_objects.COLLECTOR_IMAGES["v0.9"],
    katib_objects.TFEVENT_IMAGE,
    "file-metrics-collector",
    "registry.invalid/file-metrics-collector@sha256:abc",
    "registry.invalid/x:1",
]
"""Strings the mutations look for, strings shells and the kubelet treat specially, JSON Pointer
metacharacters, and unicode that breaks naive handling."""

text = st.text(max_size=24)
strings = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    text,
    st.lists(st.sampled_from(SPECIAL_STRINGS), min_size=1, max_size=4).map(" ".join),
    st.tuples(st.sampled_from(SPECIAL_STRINGS), text).map("".join),
)
huge_strings = st.builds(
    lambda s, n: s * n, st.sampled_from(["a", "é", "$(", "-w ", "~1", '"']), st.integers(1000, 60_000)
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**64, -(2**64), 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
)


def nested(depth: int, leaf: Any = None) -> Any:
    """``depth`` levels of alternating lists and maps around ``leaf``."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4),
    max_leaves=12,
)
hostile = st.one_of(
    json_values,
    huge_strings,
    st.builds(nested, st.integers(20, 120), scalars),
    st.sampled_from([{}, [], [{}], [[]], [None], {"": None}, {"~1": {"/": []}}]),
    st.lists(strings, max_size=6),
    st.lists(st.dictionaries(strings, strings, max_size=3), max_size=3),
)
"""Any JSON value: wrong types for whatever field it lands in, huge strings, deep nesting, empties."""

# -- Pods and Jobs ------------------------------------------------------------------------------------

label_keys = st.one_of(
    st.sampled_from(
        [
            "notebook-name",
            "sidecar.istio.io/inject",
            "kubeflow-extension",
            "app",
            "a/b",
            "x~y",
            "~1",
            "~0",
            "/",
            "",
            "job-name",
            "katib.kubeflow.org/trial",
        ]
    ),
    strings,
)
string_maps = st.dictionaries(label_keys, strings, max_size=5)

COLLECTOR_NAMES = [*COLLECTOR_CONTAINERS, "istio-proxy", "main", "metrics-collector"]
images = st.one_of(
    st.sampled_from([*katib_objects.COLLECTOR_IMAGES.values(), katib_objects.TFEVENT_IMAGE]), strings
)


@st.composite
def argv_lists(draw: st.DrawFn) -> list[str]:
    """Realistic argument lists (Katib's collector flags, Kale's program, Katib's ``sh -c`` wrapping)
    with hostile words spliced in, or hostile words alone."""
    version = draw(st.sampled_from(katib_objects.KATIB_VERSIONS))
    kale_version = draw(st.sampled_from(["0.6", "0.7"]))
    base = draw(
        st.sampled_from(
            [
                [],
                katib_objects.collector_args(version),
                katib_objects.katib_wrapped(katib_objects.kale_command(kale_version))["args"],
                ["sh", "-c", katib_objects.kale_command(kale_version)],
                ["python3", "-u", "-c", "from kale.common.kfputils import create_and_wait_kfp_run\nx()"],
                [katib_objects.kale_command(kale_version)],
                ["-w", "true", "-t", "x"],
                ["-t", "-w=false"],
            ]
        )
    )
    argv = list(base)
    for _ in range(draw(st.integers(0, 3))):
        argv.insert(draw(st.integers(0, len(argv))), draw(strings))
    return argv


@st.composite
def containers(draw: st.DrawFn, init: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": draw(st.sampled_from(COLLECTOR_NAMES) | strings)}
    if draw(st.booleans()):
        container["image"] = draw(images)
    for field in ("command", "args"):
        if draw(st.integers(0, 2)):
            container[field] = draw(argv_lists())
    if init and draw(st.booleans()):
        container["restartPolicy"] = draw(st.sampled_from(["Always", "Never"]))
    if draw(st.integers(0, 4)) == 0:
        container["env"] = [{"name": draw(strings), "value": draw(strings)}]
    return container


@st.composite
def owner_references(draw: st.DrawFn) -> list[dict[str, Any]]:
    owners = []
    for _ in range(draw(st.integers(0, 3))):
        owner: dict[str, Any] = {
            "apiVersion": draw(
                st.sampled_from(
                    ["kubeflow.org/v1beta1", "kubeflow.org/v1alpha3", "kubeflow.org/v1", "batch/v1"]
                )
                | strings
            ),
            "kind": draw(st.sampled_from(["Trial", "Job", "trial", "Experiment"]) | strings),
            "name": draw(strings),
            "uid": draw(strings),
        }
        for flag in ("controller", "blockOwnerDeletion"):
            if draw(st.booleans()):
                owner[flag] = draw(st.booleans())
        owners.append(owner)
    return owners


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if draw(st.booleans()):
        meta["name"] = draw(strings)
    else:
        meta["generateName"] = draw(strings)
    for field in ("labels", "annotations"):
        if draw(st.integers(0, 3)):
            meta[field] = draw(string_maps)
    if draw(st.booleans()):
        meta["ownerReferences"] = draw(owner_references())
    return meta


@st.composite
def pod_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(st.lists(containers(), min_size=1, max_size=4))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(containers(init=True), max_size=3))
    for field in ("serviceAccountName", "serviceAccount"):
        if draw(st.integers(0, 2)) == 0:
            spec[field] = draw(strings)
    if draw(st.booleans()) and spec["containers"]:
        # Two containers of the same name: an API server refuses it, the webhook must still cope.
        spec["containers"].append(copy.deepcopy(spec["containers"][0]))
    return spec


@st.composite
def generated_pods(draw: st.DrawFn) -> dict[str, Any]:
    """Schema-valid Pods (as far as the OpenAPI schema goes) with hostile strings everywhere."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": draw(metadata()), "spec": draw(pod_specs())}


@st.composite
def generated_jobs(draw: st.DrawFn) -> dict[str, Any]:
    template: dict[str, Any] = {"spec": draw(pod_specs())}
    if draw(st.integers(0, 3)):
        template["metadata"] = draw(metadata())
        template["metadata"].pop("ownerReferences", None)
    meta = draw(metadata())
    if draw(st.booleans()):
        meta["ownerReferences"] = [
            {
                "apiVersion": "kubeflow.org/v1beta1",
                "kind": "Trial",
                "name": "t",
                "uid": "u",
                "controller": True,
            },
            *meta.get("ownerReferences", []),
        ]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": template}}


realistic_objects = st.one_of(
    st.builds(
        katib_objects.trial_pod,
        version=st.sampled_from(katib_objects.KATIB_VERSIONS),
        proxy=st.sampled_from(["classic", "native", None]),
        kale=st.sampled_from([None, "0.6", "0.7"]),
        tfevent=st.booleans(),
    ),
    st.builds(
        katib_objects.trial_job,
        api_version=st.sampled_from(["kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"]),
        kale=st.sampled_from([None, "0.6", "0.7"]),
    ),
    st.builds(katib_objects.notebook_pod, labels=string_maps),
)
objects = st.one_of(realistic_objects, generated_pods(), generated_jobs())

# -- aiming a value at a path ---------------------------------------------------------------------------


def paths(value: Any, prefix: Path = (), limit: int = 400) -> list[Path]:
    """Every path in ``value`` (maps and lists, depth first), the root excluded; at most ``limit``."""
    found: list[Path] = []

    def walk(node: Any, here: Path) -> None:
        if len(found) >= limit:
            return
        if isinstance(node, dict):
            items: Iterator[tuple[str | int, Any]] = iter(node.items())
        elif isinstance(node, list):
            items = iter(enumerate(node))
        else:
            return
        for key, child in items:
            found.append((*here, key))
            walk(child, (*here, key))

    walk(value, prefix)
    return found


def replaced(value: Any, path: Path, new: Any) -> Any:
    """A copy of ``value`` with ``path`` set to ``new``; only the containers on the path are copied."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copied: Any = dict(value)
    elif isinstance(value, list):
        copied = list(value)
    else:
        return value
    copied[head] = replaced(copied[head], rest, new)
    return copied


def deleted(value: Any, path: Path) -> Any:
    """A copy of ``value`` without ``path`` (a list element is removed, shifting the rest)."""
    head, rest = path[0], path[1:]
    copied: Any = dict(value) if isinstance(value, dict) else list(value)
    if rest:
        copied[head] = deleted(copied[head], rest)
    else:
        del copied[head]
    return copied


@st.composite
def perturbed(draw: st.DrawFn, base: Any, most: int = 3) -> Any:
    """``base`` with up to ``most`` of its paths replaced by hostile values, deleted, nulled or doubled."""
    value = base
    for _ in range(draw(st.integers(0, most))):
        candidates = paths(value)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(["replace", "replace", "delete", "null", "double"]))
        if action == "delete":
            value = deleted(value, path)
        elif action == "null":
            value = replaced(value, path, None)
        elif action == "double":
            value = replaced(value, path, [value_at(value, path)] * 2)
        else:
            value = replaced(value, path, draw(hostile))
    return value


def value_at(value: Any, path: Path) -> Any:
    for token in path:
        value = value[token]
    return value


# -- AdmissionReviews --------------------------------------------------------------------------------


def _gvk(kind: str) -> dict[str, str]:
    return {"group": "batch" if kind == "Job" else "", "version": "v1", "kind": kind}


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid AdmissionReviews around generated objects, some with a hostile envelope."""
    obj = draw(perturbed(draw(objects), most=2))
    body = katib_objects.review(None)
    body["request"]["object"] = obj
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else "Pod"
    body["request"]["kind"] = _gvk(kind)
    body["request"]["uid"] = draw(st.sampled_from(["705ab4f5-6393-11e8-b7cc-42010a800002"]) | strings)
    if draw(st.integers(0, 5)) == 0:
        body["apiVersion"] = "admission.k8s.io/v1beta1"
    if draw(st.integers(0, 5)) == 0:
        body["request"]["operation"] = draw(st.sampled_from(["UPDATE", "DELETE", "CONNECT", "create"]))
    if draw(st.integers(0, 7)) == 0:
        body["request"]["dryRun"] = draw(scalars)
    if draw(st.integers(0, 4)) == 0:
        # The envelope itself: anything at any level above the object.
        envelope_paths = [p for p in paths(body, limit=60) if p[:2] != ("request", "object") or len(p) == 2]
        path = draw(st.sampled_from(envelope_paths))
        body = replaced(body, path, draw(hostile)) if draw(st.integers(0, 3)) else deleted(body, path)
    return body


# -- Metacontroller sync requests -------------------------------------------------------------------------

CONTROLLERS = (shipped_controller(), shipped_controller("legacy-istio"))
dns_labels = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
owners = st.one_of(
    st.sampled_from(["alice@example.com", "", " ", "a\nb", "\x7f", "o'brien", 'say "hi"', "\u202e", "日本"]),
    st.text(max_size=40),
    strings,
)


@st.composite
def sync_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Sync (and finalize) requests as Metacontroller sends them, with observed children, odd Profiles
    and odd controllers, some with one hostile value anywhere."""
    name = draw(dns_labels | st.sampled_from(["kubeflow", "e2e-alice"]) | strings)
    controller = draw(st.sampled_from(CONTROLLERS))
    key = draw(st.sampled_from([name, "/" + name, f"ns/{name}", "other"]))
    owner = draw(owners | st.none())
    choices: list[dict[str, Any]] = [
        {},
        {key: profile(name, owner=owner)},
        {key: profile("someone-else", owner=owner)},
        {key: None},
    ]
    profiles = draw(st.sampled_from(choices))
    observed = {}
    if draw(st.booleans()):
        observed = {
            "EnvoyFilter.networking.istio.io/v1alpha3": {
                f"{name}/kubeflow-extension-userid": {"metadata": {"name": "kubeflow-extension-userid"}}
            }
        }
    body = sync_request(
        controller,
        namespace(name),
        profiles=profiles,
        attachments=observed,
        finalizing=draw(st.integers(0, 6)) == 0,
    )
    if draw(st.integers(0, 5)) == 0:
        rules = body["controller"]["spec"]["attachments"]
        extra = draw(
            st.sampled_from(
                [
                    {"apiVersion": "v1", "resource": "configmaps"},
                    {"apiVersion": "networking.istio.io/v1beta1", "resource": "envoyfilters"},
                    {"apiVersion": "security.istio.io/v1", "resource": "authorizationpolicies"},
                    rules[0],
                    {"apiVersion": 1, "resource": None},
                    {"apiVersion": "a/b", "resource": ["envoyfilters"]},
                    "not-a-rule",
                ]
            )
        )
        rules.insert(draw(st.integers(0, len(rules))), extra)
    if draw(st.integers(0, 3)) == 0:
        path = draw(st.sampled_from(paths(body, limit=200)))
        body = replaced(body, path, draw(hostile)) if draw(st.integers(0, 3)) else deleted(body, path)
    return body


CUSTOMIZE = {"controller": CONTROLLERS[0], "parent": namespace("e2e-alice")}
"""A customize request as Metacontroller sends it."""

# -- bytes ----------------------------------------------------------------------------------------------


def encode(value: Any) -> bytes:
    """JSON bytes; big integers and deep nesting fall back to the standard library."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    " application/json ;",
    "application/json-patch+json",
    "text/plain",
    "",
    None,
    "application/json\u00e9",
]
JSON_TRICKS = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"AdmissionReview"',
    b"NaN",
    b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "\\ud800"}}',
    b'{"a": 1e999}',
    b"\xef\xbb\xbf{}",
    b"{" * 2000 + b"}" * 2000,
    b"[" * 1023 + b"]" * 1023,
    b'{"kind": "AdmissionReview", "kind": "AdmissionReview"}',
    b"\xff\xfe\x00",
]


@st.composite
def garbage(draw: st.DrawFn, valid_bodies: st.SearchStrategy[bytes]) -> bytes:
    """Random bytes, JSON tricks, or a valid body damaged at the byte level (inserted, deleted, flipped,
    truncated or duplicated bytes)."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        return draw(st.sampled_from(JSON_TRICKS))
    body = bytearray(draw(valid_bodies))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "delete", "flip", "truncate", "duplicate"]))
        if action == "insert":
            body[at:at] = draw(
                st.binary(min_size=1, max_size=8) | st.sampled_from([b'"', b",", b"}", b"\\u"])
            )
        elif action == "delete":
            del body[at : at + draw(st.integers(1, 20))]
        elif action == "flip" and at < len(body):
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del body[at:]
        elif action == "duplicate":
            body[at:at] = body[max(0, at - 40) : at]
    return bytes(body)
