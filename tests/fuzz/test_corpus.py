"""Replays ``corpus/*.json``: inputs the fuzzers found interesting, each checked with the same properties.

A case is ``{description, endpoint, body | body_text, check, ...}``:

- ``check``: ``full`` (every property of checks.py), ``strict`` (also no tolerated finding: no internal
  error, no second patch at all, no created map lacking required fields), or ``answer-only`` (no escape,
  no 5xx, expected status);
- ``headers``: the request's headers exactly, as ``[[name, value], ...]`` (latin-1);
- ``expect_status``, ``expect_attachments``, ``max_seconds``: further expectations;
- ``fixed``: the product defect the case once showed (kept so that it cannot come back).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import checks
from tests.fuzz.asgi import Driver
from tests.fuzz.strategies import encode

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(CORPUS.glob("*.json"))


def _body(case: dict[str, Any]) -> bytes:
    if "body_text" in case:
        text: str = case["body_text"]
        return text.encode("utf-8", "surrogatepass")
    return encode(case["body"])


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case(path: Path, webhook_app: Driver, hooks_app: Driver) -> None:
    case = json.loads(path.read_text())
    try:
        _replay(case, webhook_app, hooks_app)
    except AssertionError as error:
        if "fixed" in case:
            raise AssertionError(f"a fixed defect is back: {case['fixed']}\n{error}") from None
        raise


def _replay(case: dict[str, Any], webhook_app: Driver, hooks_app: Driver) -> None:
    endpoint, body, mode = case["endpoint"], _body(case), case["check"]
    post: dict[str, Any] = {}
    if "headers" in case:
        post["headers"] = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in case["headers"]]
    if "max_seconds" in case:
        post["max_seconds"] = case["max_seconds"]
    driver = webhook_app if endpoint == "/mutate" else hooks_app
    if mode == "answer-only":
        answer = checks._answered(driver, endpoint, body, endpoint, **post)
        status = answer.status
        if status == 200 and endpoint == "/mutate":
            assert answer.json()["response"]["allowed"] is True
    elif endpoint == "/mutate":
        status = checks.check_mutate(driver, body, strict=mode == "strict", **post).status
    elif endpoint == "/customize":
        status = checks.check_customize(driver, body, **post)
    else:
        status = checks.check_sync(driver, body, endpoint, deterministic=True, **post)
        if "expect_attachments" in case:
            answer = driver.post(endpoint, body)
            assert len(answer.json()["attachments"]) == case["expect_attachments"]
    if "expect_status" in case:
        assert status == case["expect_status"], case["description"]


def test_every_case_is_described() -> None:
    assert CASES
    for path in CASES:
        case = json.loads(path.read_text())
        assert {"description", "endpoint", "check"} <= case.keys(), path.name
        assert case["check"] in ("full", "strict", "answer-only"), path.name
        assert ("body" in case) != ("body_text" in case), path.name
