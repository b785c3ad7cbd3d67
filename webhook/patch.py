"""RFC 6902 operations built from raw keys, relative to the object exactly as it was sent.

Mutations describe what they want as a nested mapping and get the smallest patch that produces it:
only differing leaves are touched, and a missing (or null) map is created by one ``add`` of the whole
subtree, because an ``add`` below a missing map fails. No object is ever diffed as a whole.

The objects come from JSON (or YAML), whose maps are plain dicts: they are tested with
``isinstance(x, dict)``, several times cheaper than the ``Mapping`` ABC on every review's hot path.
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
        elif not isinstance(obj, dict) or token not in obj:
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
            if isinstance(token, int) or not isinstance(parent, dict):
                raise ShapeError(f"{pointer(base[: depth + 1])} does not exist")
            return [_add_tree(pointer(base[: depth + 1]), base[depth + 1 :], wanted)]
    return _merge_into(target, pointer(base), wanted)


def _add_tree(path: str, rest: Sequence[Token], wanted: Mapping[str, Any]) -> Op:
    value: Any = dict(wanted)
    for token in reversed(rest):
        if isinstance(token, int):
            raise ShapeError(f"{path} is missing; cannot create list index {token}")
        value = {token: value}
    return {"op": "add", "path": path, "value": value}


def _merge_into(current: Any, path: str, wanted: Mapping[str, Any]) -> list[Op]:
    """``path`` is ``current``'s pointer, already escaped: each key below it is escaped once."""
    if not isinstance(current, dict):
        raise ShapeError(f"{path or '/'} is not a map")
    ops: list[Op] = []
    for key, value in wanted.items():
        here = f"{path}/{escape(key)}"
        existing = current.get(key)
        if isinstance(value, Mapping):
            if existing is None:
                ops.append(_add_tree(here, (), value))
            else:
                ops.extend(_merge_into(existing, here, value))
        elif key not in current:
            ops.append({"op": "add", "path": here, "value": value})
        elif existing != value or type(existing) is not type(value):
            ops.append({"op": "replace", "path": here, "value": value})
    return ops


class PatchConflictError(Exception):
    """An operation does not fit the object it is applied to: a bug in the mutation that made it."""


def unescape(token: str) -> str:
    """The raw key of a JSON Pointer reference token (RFC 6901: ``~1`` first, then ``~0``)."""
    return token.replace("~1", "/").replace("~0", "~")


def apply(obj: Any, ops: Sequence[Op]) -> Any:
    """``obj`` with ``ops`` applied, leaving ``obj`` untouched.

    Copy-on-write: only the maps and lists on each operation's path are copied (shallowly); every other
    subtree is shared with ``obj``. A whole-object deep copy per mutation was most of the webhook's cost
    on large Pods, and mutations never modify what they are given, so sharing is safe.
    """
    for op in ops:
        path = op["path"]
        tokens = path.split("/")[1:]
        if "~" in path:
            tokens = [unescape(t) for t in tokens]
        obj = _apply_at(obj, tokens, op)
    return obj


def _apply_at(node: Any, tokens: list[str], op: Op) -> Any:
    if not tokens:
        if op["op"] == "remove":
            raise PatchConflictError("cannot remove the whole document")
        return op["value"]
    head, rest = tokens[0], tokens[1:]
    if isinstance(node, dict):
        copied = dict(node)
        if rest:
            if head not in copied:
                raise PatchConflictError(f"no {head!r} on the way to {op['path']}")
            copied[head] = _apply_at(copied[head], rest, op)
        elif op["op"] == "add":
            copied[head] = op["value"]
        elif head not in copied:
            raise PatchConflictError(f"{op['op']} of missing {op['path']}")
        elif op["op"] == "replace":
            copied[head] = op["value"]
        else:
            del copied[head]
        return copied
    if isinstance(node, list):
        items = list(node)
        if head == "-" and not rest and op["op"] == "add":
            items.append(op["value"])
            return items
        if not head.isdigit() or int(head) > len(items) - (0 if op["op"] == "add" and not rest else 1):
            raise PatchConflictError(f"bad index {head!r} in {op['path']}")
        index = int(head)
        if rest:
            items[index] = _apply_at(items[index], rest, op)
        elif op["op"] == "add":
            items.insert(index, op["value"])
        elif op["op"] == "replace":
            items[index] = op["value"]
        else:
            del items[index]
        return items
    raise PatchConflictError(f"{op['path']} goes through a scalar")
