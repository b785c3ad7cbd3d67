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


@st.composite
def reviews_bytes(draw: st.DrawFn) -> bytes:
    return s.encode(katib_objects.review(draw(s.realistic_objects)))


@fuzz(1.0)
@given(
    body=s.garbage(reviews_bytes()), content_type=st.sampled_from(s.CONTENT_TYPES), chunks=st.integers(1, 4)
)
def test_garbage(webhook_app: Driver, body: bytes, content_type: str | None, chunks: int) -> None:
    check_mutate(webhook_app, body, content_type=content_type, chunks=chunks)
