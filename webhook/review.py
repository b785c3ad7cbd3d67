"""AdmissionReview in and out: parsing with clear client errors, and the one place answers are built.

``admission.k8s.io/v1`` is what the manifests register; ``v1beta1`` is accepted and answered in kind
(same request and response fields) so an older API server gets an answer it can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict

import orjson
import pybase64

from service.http import ClientError
from webhook.patch import Op

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
NO_OBJECT_OPERATIONS = frozenset({"DELETE", "CONNECT"})
"""Operations whose request legitimately carries no object; there is nothing to mutate."""


class AdmissionResponse(TypedDict):
    uid: str
    allowed: Literal[True]
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


class Review(NamedTuple):
    """What the webhook needs from a request; ``obj`` is None when there is nothing to mutate.

    A named tuple: immutable, and made at about half a frozen dataclass's cost on every review.
    """

    api_version: str
    uid: str
    kind: str
    operation: str
    namespace: str
    obj: dict[str, Any] | None
    dry_run: bool

    @property
    def name(self) -> str:
        """The object's name for log lines (Pods from a Job have only ``generateName``)."""
        metadata = (self.obj or {}).get("metadata")
        if not isinstance(metadata, dict):
            return ""
        return str(metadata.get("name") or metadata.get("generateName") or "")


def parse(body: Any) -> Review:
    """Read an AdmissionReview; ClientError (4xx) for anything an API server would never send."""
    if not isinstance(body, dict):
        raise ClientError(400, "body must be a JSON object (an AdmissionReview)")
    api_version = body.get("apiVersion")
    if api_version not in API_VERSIONS or body.get("kind") != "AdmissionReview":
        raise ClientError(
            400,
            f"expected kind AdmissionReview in {' or '.join(API_VERSIONS)}, "
            f"got {body.get('apiVersion')!r} {body.get('kind')!r}",
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise ClientError(400, "`request` must be a JSON object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ClientError(400, "`request.uid` must be a non-empty string")
    kind = request.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise ClientError(400, "`request.kind.kind` must be a string")
    operation = request.get("operation", "CREATE")
    if not isinstance(operation, str):
        raise ClientError(400, "`request.operation` must be a string")
    obj = request.get("object")
    if operation in NO_OBJECT_OPERATIONS:
        obj = None
    elif not isinstance(obj, dict):
        raise ClientError(400, f"`request.object` must be a JSON object for {operation}")
    namespace = request.get("namespace")
    # In field order, by position: keyword arguments to a named tuple cost more on every review.
    return Review(
        str(api_version),
        uid,
        kind["kind"],
        operation,
        namespace if isinstance(namespace, str) else "",
        obj,
        request.get("dryRun") is True,
    )


def answer(review: Review, ops: Sequence[Op], warnings: Sequence[str] = ()) -> AdmissionReview:
    """The response: always allowed (this webhook never denies); a base64 JSON Patch if anything changes."""
    response: AdmissionResponse = {"uid": review.uid, "allowed": True}
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = pybase64.b64encode_as_string(orjson.dumps(ops))
    if warnings:
        response["warnings"] = list(warnings)
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}
