"""Fuzzing /mutate through the real ASGI app: structure-aware AdmissionReviews with hostile values at
every level, and garbage. The properties are in ``checks.check_mutate``."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.asgi import Driver
from tests.fuzz.checks import check_mutate
from tests.fuzz.conftest import fuzz
from tests.webhook import katib_objects


@fuzz(2.0)
@given(review=s.reviews())
def test_generated_reviews(webhook_app: Driver, review: dict[str, Any]) -> None:
    """Trial Pods, trial Jobs, notebooks and generated Pods/Jobs with hostile strings, perturbed paths and
    sometimes a hostile envelope."""
    check_mutate(webhook_app, s.encode(review))


@fuzz(0.5)
@given(obj=s.objects, value=s.hostile, seed=st.integers(0, 2**32 - 1))
def test_one_hostile_value_at_every_path(
    webhook_app: Driver, obj: dict[str, Any], value: Any, seed: int
) -> None:
    """One review, then the same review with ``value`` in place of each of its parts in turn (or each part
    deleted), from ``request`` down to a single character of an argument list."""
    review = katib_objects.review(None)
    review["request"]["object"] = obj
    review["request"]["kind"] = s._gvk(obj["kind"])
    check_mutate(webhook_app, s.encode(review))
    everywhere = s.paths(review)
    rng = random.Random(seed)
    for path in rng.sample(everywhere, min(len(everywhere), 60)):
        variant = s.deleted(review, path) if rng.random() < 0.15 else s.replaced(review, path, value)
        check_mutate(webhook_app, s.encode(variant))


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
def garbage(draw: st.DrawFn) -> bytes:
    """Random bytes, JSON tricks, or a valid review damaged at the byte level."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        return draw(st.sampled_from(JSON_TRICKS))
    body = bytearray(s.encode(katib_objects.review(draw(s.realistic_objects))))
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


@fuzz(1.0)
@given(body=garbage(), content_type=st.sampled_from(CONTENT_TYPES), chunks=st.integers(1, 4))
def test_garbage(webhook_app: Driver, body: bytes, content_type: str | None, chunks: int) -> None:
    check_mutate(webhook_app, body, content_type=content_type, chunks=chunks)
