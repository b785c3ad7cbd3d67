"""The properties every answer must have, shared by the fuzz tests and the corpus replay.

/mutate: no exception escapes the app, no 5xx, an error is a 4xx JSON body; a 200 answers the request's
uid, allows, and its patch (if any) is base64 JSON that applies to the object as sent, leaves a Pod or Job
that validates against Kubernetes' OpenAPI schema wherever the original did, and yields no further patch
when the webhook is called again on its own output.

/sync, /finalize: the same for errors; a 200 lists only attachments of the types the controller declares,
each with a name and a namespace, nothing while finalizing, and no ``status``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jsonpatch
import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from e2e.framework import upstream
from hooks.desired import SUPPORTED_RESOURCES
from tests.fuzz.asgi import Answer, Driver
from tests.fuzz.strategies import encode

OPENAPI_ROOTS = {
    "Pod": ("api/v1", "io.k8s.api.core.v1.Pod"),
    "Job": ("apis/batch/v1", "io.k8s.api.batch.v1.Job"),
}
TIMEOUT_SECONDS = 5.0
"""``timeoutSeconds`` of every shipped admission webhook: an answer after that is a failed call."""

COUNTS: Counter[str] = Counter()
"""Inputs sent, by endpoint and outcome; the fuzz conftest prints them at the end of the run."""
NOTES: Counter[str] = Counter()
"""Tolerated findings, printed in the summary."""
INTERNAL_ERRORS: list[bytes] = []
"""The first inputs that made a mutation fail unexpectedly (tolerated: the object did not validate)."""
MUTATION_FAILED = "mutation failed; object admitted unchanged"
"""The webhook's log message for such a failure; check_mutate judges it, not the log fixture."""


class PropertyError(AssertionError):
    pass


def fail(message: str, body: bytes, answer: Answer | None = None) -> PropertyError:
    shown = body if len(body) <= 600 else body[:600] + b"..."
    detail = f"\n  input: {shown!r}"
    if answer is not None:
        detail += f"\n  answer: {answer.status} {answer.body[:600]!r}"
        if answer.escaped is not None:
            detail += f"\n  escaped: {answer.escaped!r}"
    return PropertyError(message + detail)


@functools.cache
def validator(kind: str) -> Draft202012Validator:
    """Kubernetes' OpenAPI v3 schema for ``Pod`` or ``Job``, from the kubernetes module of the pinned
    version in the Go module cache."""
    group_version, root = OPENAPI_ROOTS[kind]
    document = upstream.kubernetes_openapi(group_version)
    registry = Registry().with_resource(
        "urn:k8s", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"urn:k8s#/components/schemas/{root}"}, registry=registry)


def schema_errors(kind: str, obj: Any, limit: int = 3) -> list[str]:
    errors = []
    for error in validator(kind).iter_errors(obj):
        errors.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}")
        if len(errors) >= limit:
            break
    return errors


def _only_required_inside_created_maps(kind: str, patched: Any, patch: list[dict[str, Any]]) -> bool:
    """Whether every schema error is a missing required field of a map the patch added whole.

    A trial Job whose pod template has no ``spec`` gets ``spec: {serviceAccountName: ...}``, which lacks
    ``containers``; an API server's own validation refuses such a Job whatever the webhook does.
    """
    created = {op["path"] for op in patch if op["op"] == "add" and isinstance(op.get("value"), dict)}
    for error in validator(kind).iter_errors(patched):
        where = "".join(
            "/" + str(token).replace("~", "~0").replace("/", "~1") for token in error.absolute_path
        )
        if error.validator != "required" or where not in created:
            return False
    return True


def _error_answer(answer: Answer, body: bytes) -> None:
    """A refusal: 4xx with a JSON body naming the error and the status."""
    if not 400 <= answer.status < 500:
        raise fail(f"status {answer.status} is neither 200 nor 4xx", body, answer)
    if answer.content_type != "application/json":
        raise fail(f"error answered as {answer.content_type!r}", body, answer)
    try:
        error = answer.json()
    except orjson.JSONDecodeError:
        raise fail("error body is not JSON", body, answer) from None
    if not (
        isinstance(error, dict)
        and isinstance(error.get("error"), str)
        and error.get("status") == answer.status
    ):
        raise fail("error body is not {error, status}", body, answer)


def _answered(
    driver: Driver, path: str, body: bytes, endpoint: str, max_seconds: float = TIMEOUT_SECONDS, **post: Any
) -> Answer:
    began = time.perf_counter()
    answer = driver.post(path, body, **post)
    seconds = time.perf_counter() - began
    if answer.escaped is not None:
        raise fail(f"exception escaped the app: {answer.escaped!r}", body, answer)
    if not answer.complete:
        raise fail("the app returned without completing its response", body, answer)
    if answer.status >= 500:
        raise fail(f"5xx answer {answer.status}", body, answer)
    if seconds > max_seconds:
        raise fail(f"answered in {seconds:.2f} s, more than {max_seconds:.2f} s", body)
    COUNTS[f"{endpoint} {answer.status}"] += 1
    return answer


@dataclass
class Mutated:
    status: int
    patched: bool = False
    schema_checked: bool = False


def check_mutate(
    driver: Driver, body: bytes, *, reinvoke: bool = True, strict: bool = False, **post: Any
) -> Mutated:
    """Send ``body`` to /mutate and check every property of the answer (see the module docstring).

    ``strict``: a mutation's internal error fails even for an object that does not validate.
    """
    answer = _answered(driver, "/mutate", body, "/mutate", **post)
    if answer.status != 200:
        _error_answer(answer, body)
        return Mutated(answer.status)
    sent = orjson.loads(body)
    request = sent["request"]
    reply = answer.json()
    response = reply.get("response")
    if reply.get("apiVersion") != sent["apiVersion"] or reply.get("kind") != "AdmissionReview":
        raise fail("answer is not an AdmissionReview of the request's apiVersion", body, answer)
    if (
        not isinstance(response, dict)
        or response.get("uid") != request["uid"]
        or response.get("allowed") is not True
    ):
        raise fail("response must carry the request uid and allowed: true", body, answer)
    warnings = response.get("warnings", [])
    if any("internal error" in w for w in warnings):
        # The object is admitted unchanged, as designed for a bug; but no object an API server can send
        # (one that validates) may hit one. Invalid ones are counted and listed in the summary.
        kind = request["kind"]["kind"]
        if strict or kind not in ("Pod", "Job") or validator(kind).is_valid(request.get("object")):
            raise fail("a mutation raised unexpectedly (internal error)", body, answer)
        NOTES["/mutate: internal error on a schema-invalid object"] += 1
        if len(INTERNAL_ERRORS) < 5:
            INTERNAL_ERRORS.append(body[:300])
    if "patch" not in response:
        if "patchType" in response:
            raise fail("patchType without a patch", body, answer)
        return Mutated(200)
    if response.get("patchType") != "JSONPatch":
        raise fail("patch without patchType JSONPatch", body, answer)
    obj = request.get("object")
    if request.get("operation", "CREATE") != "CREATE" or not isinstance(obj, dict):
        raise fail("patched something other than a CREATE with an object", body, answer)
    try:
        patch = orjson.loads(base64.b64decode(response["patch"], validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as error:
        raise fail(f"patch does not decode: {error}", body, answer) from None
    if not patch or not all(
        isinstance(op, dict) and op.get("op") in ("add", "replace", "remove") for op in patch
    ):
        raise fail("patch must be a non-empty list of add/replace/remove operations", body, answer)
    try:
        patched = jsonpatch.apply_patch(obj, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise fail(f"patch does not apply to the object as sent: {error}", body, answer) from None
    kind = request["kind"]["kind"]
    checked = False
    if kind in ("Pod", "Job"):
        checked = True
        # Cheap first: a valid result needs no look at the original.
        if not validator(kind).is_valid(patched) and validator(kind).is_valid(obj):
            if strict or not _only_required_inside_created_maps(kind, patched, patch):
                raise fail(
                    f"the patched {kind} no longer validates: {schema_errors(kind, patched)}", body, answer
                )
            NOTES[f"/mutate: patch creates a {kind} map without the fields the schema requires of it"] += 1
    if reinvoke:
        again = {**sent, "request": {**request, "object": patched}}
        second = _answered(driver, "/mutate", encode(again), "/mutate")
        if second.status != 200:
            raise fail(f"the patched object is refused: {second.body[:600]!r}", body, answer)
        repatch = second.json()["response"].get("patch")
        if repatch is not None:
            ops = orjson.loads(base64.b64decode(repatch))
            raise fail(f"not idempotent: the patched object gets another patch {ops!r:.1000}", body, answer)
    return Mutated(200, patched=True, schema_checked=checked)


def declared_types(request: dict[str, Any]) -> set[tuple[str, str]]:
    """(apiVersion, kind) pairs the request's controller declares and the hook can build."""
    rules = request["controller"]["spec"].get("attachments") or []
    found = set()
    for rule in rules:
        if (
            isinstance(rule, dict)
            and isinstance(rule.get("apiVersion"), str)
            and isinstance(rule.get("resource"), str)
        ):
            kind = SUPPORTED_RESOURCES.get((rule["apiVersion"].rpartition("/")[0], rule["resource"]))
            if kind is not None:
                found.add((rule["apiVersion"], kind))
    return found


def check_sync(
    driver: Driver, body: bytes, path: str = "/sync", *, deterministic: bool = False, **post: Any
) -> int:
    """Send ``body`` to a sync-shaped hook and check the answer; returns its status."""
    answer = _answered(driver, path, body, path, **post)
    if answer.status != 200:
        _error_answer(answer, body)
        return answer.status
    sent = orjson.loads(body)
    reply = answer.json()
    attachments = reply.get("attachments")
    if not isinstance(attachments, list) or "status" in reply:
        raise fail("a sync answer is {attachments: [...]} without status", body, answer)
    finalizing = sent.get("finalizing", False) is True
    if finalizing != ("finalized" in reply) or (
        finalizing and (attachments or not isinstance(reply["finalized"], bool))
    ):
        raise fail("finalizing: no attachments and a boolean `finalized`; otherwise neither", body, answer)
    types = declared_types(sent)
    for attachment in attachments:
        metadata = attachment.get("metadata") if isinstance(attachment, dict) else None
        if not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("namespace"), str)
            and metadata["namespace"]
            and isinstance(metadata.get("name"), str)
            and metadata["name"]
        ):
            raise fail("every attachment needs metadata.name and metadata.namespace", body, answer)
        if (attachment.get("apiVersion"), attachment.get("kind")) not in types:
            raise fail("attachment of a type the controller does not declare", body, answer)
    if deterministic:
        again = _answered(driver, path, body, path, **post)
        if again.body != answer.body:
            raise fail("the same request got a different answer", body, answer)
    return 200


def check_customize(driver: Driver, body: bytes, **post: Any) -> int:
    answer = _answered(driver, "/customize", body, "/customize", **post)
    if answer.status != 200:
        _error_answer(answer, body)
        return answer.status
    name = orjson.loads(body)["parent"]["metadata"]["name"]
    want = {"relatedResources": [{"apiVersion": "kubeflow.org/v1", "resource": "profiles", "names": [name]}]}
    if answer.json() != want:
        raise fail("customize must ask for the namespace's Profile", body, answer)
    return 200
