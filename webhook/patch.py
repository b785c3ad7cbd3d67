"""RFC 6902 operations built from raw keys, relative to the object exactly as it was sent.

Mutations describe what they want as a nested mapping and get the smallest patch that produces it:
only differing leaves are touched, and a missing (or null) map is created by one ``add`` of the whole
subtree, because an ``add`` below a missing map fails. No object is ever diffed as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

Token = str | int


class Op(TypedDict):
    op: Literal["add", "replace", "remove"]
    path: str
    value: NotRequired[Any]


class ShapeError(ValueError):
    """The object has a non-map where a map is needed (or a bad list index): it cannot be patched."""


@dataclass(frozen=True)
class Mutation:
    """What one mutation decided: the operations, and warnings for where it chose not to act."""

    ops: tuple[Op, ...] = ()
    warnings: tuple[str, ...] = ()


UNCHANGED = Mutation()


def escape(token: Token) -> str:
    """One JSON Pointer reference token (RFC 6901: ``~`` first, then ``/``). Called once per raw key."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(tokens: Sequence[Token]) -> str:
    return "".join("/" + escape(token) for token in tokens)


def lookup(obj: Any, tokens: Sequence[Token]) -> Any:
    """The value at ``tokens``, or None when any step is missing or of the wrong type."""
    for token in tokens:
        if isinstance(token, int):
            if not isinstance(obj, list) or not 0 <= token < len(obj):
                return None
        elif not isinstance(obj, Mapping) or token not in obj:
            return None
        obj = obj[token]
    return obj


def merge(obj: Any, base: Sequence[Token], wanted: Mapping[str, Any]) -> list[Op]:
    """Operations that make ``obj`` at ``base`` contain ``wanted``.

    A mapping in ``wanted`` is merged key by key; any other value (string, list, ...) is a leaf that
    replaces what is there. ``base`` itself must exist (or be creatable as a map inside its parent).
    """
    target = obj
    for depth, token in enumerate(base):
        parent = target
        target = lookup(parent, (token,))
        if target is None:
            if isinstance(token, int) or not isinstance(parent, Mapping):
                raise ShapeError(f"{pointer(base[: depth + 1])} does not exist")
            return [_add_tree(base[: depth + 1], base[depth + 1 :], wanted)]
    return _merge_into(target, list(base), wanted)


def _add_tree(path: Sequence[Token], rest: Sequence[Token], wanted: Mapping[str, Any]) -> Op:
    value: Any = dict(wanted)
    for token in reversed(rest):
        if isinstance(token, int):
            raise ShapeError(f"{pointer(path)} is missing; cannot create list index {token}")
        value = {token: value}
    return {"op": "add", "path": pointer(path), "value": value}


def _merge_into(current: Any, path: list[Token], wanted: Mapping[str, Any]) -> list[Op]:
    if not isinstance(current, Mapping):
        raise ShapeError(f"{pointer(path) or '/'} is not a map")
    ops: list[Op] = []
    for key, value in wanted.items():
        here = [*path, key]
        existing = current.get(key)
        if isinstance(value, Mapping):
            if existing is None:
                ops.append(_add_tree(here, (), value))
            else:
                ops.extend(_merge_into(existing, here, value))
        elif key not in current:
            ops.append({"op": "add", "path": pointer(here), "value": value})
        elif existing != value or type(existing) is not type(value):
            ops.append({"op": "replace", "path": pointer(here), "value": value})
    return ops
