from typing import Any

import jsonpatch
import jsonpointer
import pytest

from webhook.patch import Op, PatchConflictError, ShapeError, Token, apply, escape, lookup, merge, pointer


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("sidecar.istio.io/inject", "sidecar.istio.io~1inject"),
        ("a~b", "a~0b"),
        ("~1", "~01"),
        ("a~/b", "a~0~1b"),
    ],
)
def test_escape_follows_rfc6901(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    # Decoding (RFC 6901 section 4) gives the raw key back, so nothing is escaped twice.
    assert jsonpointer.JsonPointer("/" + escape(raw)).parts == [raw]


def test_pointer_joins_escaped_tokens_and_indexes() -> None:
    assert pointer(("spec", "containers", 2, "args")) == "/spec/containers/2/args"
    assert pointer(("metadata", "labels", "a/b")) == "/metadata/labels/a~1b"


def test_lookup_is_none_for_missing_or_mistyped_steps() -> None:
    obj = {"a": {"b": [1, {"c": "x"}]}}
    assert lookup(obj, ("a", "b", 1, "c")) == "x"
    assert lookup(obj, ("a", "b", 5)) is None
    assert lookup(obj, ("a", "b", "c")) is None
    assert lookup(obj, ("a", "x")) is None


def test_merge_creates_a_missing_map_with_one_add() -> None:
    obj = {"metadata": {"name": "p"}}
    ops = merge(obj, ("metadata", "labels"), {"sidecar.istio.io/inject": "true", "k": "v"})
    assert ops == [
        {"op": "add", "path": "/metadata/labels", "value": {"sidecar.istio.io/inject": "true", "k": "v"}}
    ]
    assert jsonpatch.apply_patch(obj, ops)["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"


def test_merge_creates_missing_parents_as_one_subtree() -> None:
    obj: dict[str, Any] = {"spec": {"template": {"spec": {}}}}
    ops = merge(obj, ("spec", "template"), {"metadata": {"labels": {"a": "1"}, "annotations": {"b": "2"}}})
    assert len(ops) == 1
    assert jsonpatch.apply_patch(obj, ops)["spec"]["template"]["metadata"] == {
        "labels": {"a": "1"},
        "annotations": {"b": "2"},
    }


def test_merge_touches_only_differing_leaves() -> None:
    obj = {"m": {"same": "1", "other": "2", "keep": "3"}}
    ops = merge(obj, ("m",), {"same": "1", "other": "x", "new": "y"})
    assert ops == [
        {"op": "replace", "path": "/m/other", "value": "x"},
        {"op": "add", "path": "/m/new", "value": "y"},
    ]


def test_merge_replaces_a_null_map() -> None:
    obj = {"metadata": {"labels": None}}
    ops = merge(obj, ("metadata", "labels"), {"a": "b"})
    assert jsonpatch.apply_patch(obj, ops) == {"metadata": {"labels": {"a": "b"}}}


def test_merge_distinguishes_types_of_equal_values() -> None:
    # "true" the string is wanted; a boolean true (invalid in a label) must be replaced.
    assert merge({"m": {"k": True}}, ("m",), {"k": "true"}) == [
        {"op": "replace", "path": "/m/k", "value": "true"}
    ]


@pytest.mark.parametrize(
    ("obj", "base"),
    [
        ({"metadata": "x"}, ("metadata", "labels")),
        ({"metadata": {"labels": ["a"]}}, ("metadata", "labels")),
        ({"spec": {"containers": []}}, ("spec", "containers", 0)),
    ],
)
def test_merge_refuses_objects_of_the_wrong_shape(obj: Any, base: tuple[Token, ...]) -> None:
    with pytest.raises(ShapeError):
        merge(obj, base, {"a": "b"})


def test_apply_agrees_with_jsonpatch_and_copies_only_the_paths_it_changes() -> None:
    import copy

    pod: dict[str, Any] = {
        "metadata": {"labels": {"a": "1"}, "annotations": {"x/y": "1"}},
        "spec": {
            "containers": [{"name": "c", "args": ["-t", "x"]}, {"name": "d"}],
            "volumes": [{"name": "v"}],
        },
    }
    sent = copy.deepcopy(pod)
    ops: list[Op] = [
        {"op": "add", "path": "/metadata/labels/sidecar.istio.io~1inject", "value": "true"},
        {"op": "replace", "path": "/metadata/annotations/x~1y", "value": "2"},
        {"op": "add", "path": "/spec/containers/0/command", "value": ["sh", "-c", "s", "c"]},
        {"op": "replace", "path": "/spec/containers/0/args/1", "value": "y"},
        {"op": "add", "path": "/spec/containers/0/args/0", "value": "-w=false"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "e"}},
        {"op": "remove", "path": "/spec/containers/1"},
        {"op": "add", "path": "/metadata/owner~0s", "value": {}},
    ]
    result = apply(pod, ops)
    assert result == jsonpatch.apply_patch(sent, ops)
    assert pod == sent, "the object as sent is untouched"
    assert result["spec"]["volumes"] is pod["spec"]["volumes"], "subtrees off the paths are shared"


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/metadata/missing", "value": 1},
        {"op": "remove", "path": "/metadata/missing"},
        {"op": "add", "path": "/nope/deeper", "value": 1},
        {"op": "add", "path": "/spec/containers/5", "value": 1},
        {"op": "replace", "path": "/spec/containers/x", "value": 1},
        {"op": "add", "path": "/metadata/name/x", "value": 1},
    ],
)
def test_apply_refuses_operations_that_do_not_fit(op: Op) -> None:
    with pytest.raises(PatchConflictError):
        apply({"metadata": {"name": "n"}, "spec": {"containers": []}}, [op])
