"""Fuzzing the Metacontroller hooks through the real ASGI app: sync/finalize requests in Metacontroller's
shape with hostile values at every level, customize requests, and garbage. Properties: ``checks``."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.asgi import Driver
from tests.fuzz.checks import check_customize, check_sync
from tests.fuzz.conftest import fuzz


@fuzz(1.0)
@given(request=s.sync_requests(), path=st.sampled_from(["/sync", "/finalize"]))
def test_generated_sync_requests(hooks_app: Driver, request: dict[str, Any], path: str) -> None:
    """Every answer well formed, and the same request always gets the same bytes."""
    check_sync(hooks_app, s.encode(request), path, deterministic=True)


@fuzz(0.5)
@given(request=s.sync_requests(), value=s.hostile, seed=st.integers(0, 2**32 - 1))
def test_one_hostile_value_at_every_path(
    hooks_app: Driver, request: dict[str, Any], value: Any, seed: int
) -> None:
    """A sync request, then the same request with ``value`` in place of each of its parts in turn (or each
    part deleted): the controller, the Namespace, every observed attachment, the Profile."""
    everywhere = s.paths(request)
    rng = random.Random(seed)
    for path in rng.sample(everywhere, min(len(everywhere), 60)):
        variant = s.deleted(request, path) if rng.random() < 0.15 else s.replaced(request, path, value)
        check_sync(hooks_app, s.encode(variant))


@fuzz(0.5)
@given(value=s.hostile, seed=st.integers(0, 2**32 - 1))
def test_customize_with_a_hostile_value_anywhere(hooks_app: Driver, value: Any, seed: int) -> None:
    check_customize(hooks_app, s.encode(s.CUSTOMIZE))
    everywhere = s.paths(s.CUSTOMIZE)
    rng = random.Random(seed)
    for path in rng.sample(everywhere, min(len(everywhere), 20)):
        variant = (
            s.deleted(s.CUSTOMIZE, path) if rng.random() < 0.15 else s.replaced(s.CUSTOMIZE, path, value)
        )
        check_customize(hooks_app, s.encode(variant))


@st.composite
def sync_bytes(draw: st.DrawFn) -> bytes:
    return s.encode(draw(s.sync_requests()))


@fuzz(1.0)
@given(
    body=s.garbage(sync_bytes()),
    path=st.sampled_from(["/sync", "/finalize", "/customize"]),
    content_type=st.sampled_from(s.CONTENT_TYPES),
    chunks=st.integers(1, 4),
)
def test_garbage(hooks_app: Driver, body: bytes, path: str, content_type: str | None, chunks: int) -> None:
    if path == "/customize":
        check_customize(hooks_app, body, content_type=content_type, chunks=chunks)
    else:
        check_sync(hooks_app, body, path, content_type=content_type, chunks=chunks)
