"""RFC 6902 operations built from raw keys, relative to the object exactly as it was sent.

Mutations describe what they want as a nested mapping and get the smallest patch that produces it:
only differing leaves are touched, and a missing (or null) map is created by one ``add`` of the whole
subtree, because an ``add`` below a missing map fails. No object is ever diffed as a whole.

The objects come from JSON (or YAML), whose maps are plain dicts: they are tested with
``isinstance(x, dict)``, several times cheaper than the ``Mapping`` ABC on every review's hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict

Token = str | int


class Op(TypedDict):
    op: Literal["add", "replace", "remove"]
    path: str
    value: NotRequired[Any]


class ShapeError(ValueError):
    """The object has a non-map where a map is needed (or a bad list index): it cannot be patched."""


class Mutation(NamedTuple):
    """What one mutation decided: the operations, and warnings for where it chose not to act.

    A named tuple: immutable like a frozen dataclass, and made at about half its cost on every review.
    """

    ops: tuple[Op, ...] = ()
    warnings: tuple[str, ...] = ()


UNCHANGED = Mutation()


def escape(token: Token) -> str:
    """One JSON Pointer reference token (RFC 6901: ``~`` first, then ``/``). Called once per raw key."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(tokens: Sequence[Token]) -> str:
    if not tokens:
        return ""
    path = "/" + "/".join(map(str, tokens))
    # Each token adds one "/": more, or any "~", means a key that needs escaping (rare, so checked once).
    if "~" in path or path.count("/") != len(tokens):
        path = "".join("/" + escape(token) for token in tokens)
    return path


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

    A map (dict) in ``wanted`` is merged key by key; any other value (string, list, ...) is a leaf that
    replaces what is there. ``base`` itself must exist (or be creatable as a map inside its parent).
    """
    target = lookup(obj, base)
    if target is not None:  # the usual case: one walk, no search for where the path ends
        return merge_into(target, pointer(base), wanted)
    target = obj
    for depth, token in enumerate(base):
        parent = target
        target = lookup(parent, (token,))
        if target is None:
            if isinstance(token, int) or not isinstance(parent, dict):
                raise ShapeError(f"{pointer(base[: depth + 1])} does not exist")
            return [_add_tree(pointer(base[: depth + 1]), base[depth + 1 :], wanted)]
    return merge_into(target, pointer(base), wanted)


def _add_tree(path: str, rest: Sequence[Token], wanted: Mapping[str, Any]) -> Op:
    value: Any = dict(wanted)
    for token in reversed(rest):
        if isinstance(token, int):
            raise ShapeError(f"{path} is missing; cannot create list index {token}")
        value = {token: value}
    return {"op": "add", "path": path, "value": value}


def merge_into(current: Any, path: str, wanted: Mapping[str, Any]) -> list[Op]:
    """``merge`` for a ``current`` already found, whose pointer ``path`` is already escaped: each key
    below it is escaped once."""
    if not isinstance(current, dict):
        raise ShapeError(f"{path or '/'} is not a map")
    ops: list[Op] = []
    for key, value in wanted.items():
        here = f"{path}/{escape(key)}"
        existing = current.get(key)
        if isinstance(value, dict):
            if existing is None:
                ops.append(_add_tree(here, (), value))
            else:
                ops.extend(merge_into(existing, here, value))
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

    Copy-on-write: only the maps and lists on the operations' paths are copied (shallowly), each at most
    once per call (later operations change the copies this call made in place); every other subtree is
    shared with ``obj``. A whole-object deep copy per mutation was most of the webhook's cost on large
    Pods, and mutations never modify what they are given, so sharing is safe.
    """
    made: dict[int, Any] = {}
    """The copies this call made, by id (held here, so no id is reused while the call runs)."""
    for op in ops:
        path = op["path"]
        tokens = path.split("/")[1:]
        if "~" in path:
            tokens = [unescape(t) for t in tokens]
        if not tokens:
            if op["op"] == "remove":
                raise PatchConflictError("cannot remove the whole document")
            obj = op["value"]
            continue
        obj = parent = _own(obj, made, op)
        for token in tokens[:-1]:
            if isinstance(parent, dict):
                if token not in parent:
                    raise PatchConflictError(f"no {token!r} on the way to {path}")
                key: Token = token
            else:
                key = _index(parent, token, op, last=False)
            child = parent[key]
            if id(child) not in made:
                child = parent[key] = _own(child, made, op)
            parent = child
        _change(parent, tokens[-1], op)
    return obj


def _own(node: Any, made: dict[int, Any], op: Op) -> Any:
    """``node`` itself if this call copied it, else a shallow copy of it (recorded in ``made``)."""
    if id(node) in made:
        return node
    if isinstance(node, dict):
        copied: Any = dict(node)
    elif isinstance(node, list):
        copied = list(node)
    else:
        raise PatchConflictError(f"{op['path']} goes through a scalar")
    made[id(copied)] = copied
    return copied


def _index(items: list[Any], token: str, op: Op, last: bool) -> int:
    """The list index ``token`` names; the end of the list too for the final token of an ``add``."""
    inserting = last and op["op"] == "add"
    if not token.isdigit() or int(token) > len(items) - (0 if inserting else 1):
        raise PatchConflictError(f"bad index {token!r} in {op['path']}")
    return int(token)


def _change(parent: Any, token: str, op: Op) -> None:
    """Carry out ``op`` on the final token, in ``parent``: a copy this call made."""
    kind = op["op"]
    if isinstance(parent, dict):
        if kind == "add":
            parent[token] = op["value"]
        elif token not in parent:
            raise PatchConflictError(f"{kind} of missing {op['path']}")
        elif kind == "replace":
            parent[token] = op["value"]
        else:
            del parent[token]
    elif token == "-" and kind == "add":  # noqa: S105 (the end of a list, not a secret)
        parent.append(op["value"])
    else:
        index = _index(parent, token, op, last=True)
        if kind == "add":
            parent.insert(index, op["value"])
        elif kind == "replace":
            parent[index] = op["value"]
        else:
            del parent[index]
