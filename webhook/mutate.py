"""Which mutations apply to which kind, run in order, with their operations chained into one patch.

Each mutation sees the object as the previous ones left it (or, when it reads nothing they write, as
it was before their operations: the same to it), so the concatenated operations apply in sequence to
the object as sent. A mutation that fails unexpectedly makes the whole object pass
unchanged with a warning: admitting a Pod untouched is better than failing its creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from service.config import Config
from webhook.mutations import MutationFunction, collector, kale, notebook, token, trial_job
from webhook.patch import Op, ShapeError, apply


class Step(NamedTuple):
    """One mutation in a kind's sequence."""

    name: str
    """Labels metrics and warnings."""
    function: MutationFunction
    independent_of: frozenset[str] = frozenset()
    """Earlier mutations that write nothing this one reads: their operations need not be applied before
    it runs (applying them costs as much as a whole mutation). Checked by a property test against
    the fully chained run."""


MUTATIONS: Mapping[str, tuple[Step, ...]] = {
    "Pod": (
        Step("notebook", notebook.mutate),
        Step("collector", collector.mutate),
        # Kale reads only the command and args of containers other than Katib's collectors and Istio's proxy.
        Step("kale", kale.mutate, frozenset({"notebook", "collector"})),
    ),
    "Job": (Step("trial_job", trial_job.mutate),),
}
"""By object kind, in order."""
TOKEN_MUTATIONS: Mapping[str, Step] = {
    "Pod": Step("token", token.mutate_pod),
    "Job": Step("token", token.mutate_job),
}
"""Run last, and only in token or both identity mode: header mode's patches stay as they were."""


def mutations(kind: str, config: Config) -> tuple[Step, ...]:
    chosen = MUTATIONS.get(kind, ())
    if config.identity_mode != "header" and kind in TOKEN_MUTATIONS:
        chosen = (*chosen, TOKEN_MUTATIONS[kind])
    return chosen


class Failure(NamedTuple):
    """A mutation that did not decide: ``malformed`` (the object is malformed where it reads; a warning,
    and the others go on) or ``error`` (it raised, or made operations that do not fit: a bug)."""

    mutation: str
    status: Literal["malformed", "error"]
    error: BaseException


class Result(NamedTuple):
    """The chained patch, the mutations whose operations are in it and the ones that failed; ``failed``
    when one failed unexpectedly (then there is no patch at all, and none is in ``changed``). Only the
    failures are recorded one by one: a record of every mutation would cost each review more than some
    mutations do.

    ``obj`` (the object with the patch applied) is built only when asked for: the webhook sends the
    patch and never needs it, and building it re-copies every map and list on the patch's paths.
    Named tuples here and in Failure: immutable, and made at about half a frozen dataclass's cost.
    """

    base: dict[str, Any]
    pending: list[Op]
    ops: list[Op]
    warnings: list[str]
    failures: list[Failure]
    changed: list[str]
    """The mutations whose operations are in the patch, in order."""
    failed: bool = False

    @property
    def obj(self) -> dict[str, Any]:
        return apply(self.base, self.pending) if self.pending else self.base


def run(obj: dict[str, Any], kind: str, config: Config) -> Result:
    """Apply the mutations for ``kind`` to ``obj`` (not modified); the patch is relative to ``obj``.

    Each mutation's operations are applied before the next mutation runs (it must see their effect),
    unless the next one is independent of every mutation whose operations are pending; the last ones
    are left pending, as only ``Result.obj`` needs them.
    """
    current = obj
    pending: list[Op] = []
    pending_from: set[str] = set()
    ops: list[Op] = []
    warnings: list[str] = []
    failures: list[Failure] = []
    changed: list[str] = []
    for name, function, independent_of in mutations(kind, config):
        if pending and not pending_from <= independent_of:
            try:
                current = apply(current, pending)
            except Exception as error:  # operations that do not fit: a bug of the mutation that made them
                return _unchanged(obj, "+".join(sorted(pending_from)), error, warnings, failures)
            pending = []
            pending_from = set()
        try:
            mutation = function(current, config)
        except ShapeError as error:
            failures.append(Failure(name, "malformed", error))
            warnings.append(f"{name}: not mutated, the object is malformed: {error}")
            continue
        except Exception as error:  # any bug must leave the object admitted, unchanged
            return _unchanged(obj, name, error, warnings, failures)
        if mutation.ops:
            pending.extend(mutation.ops)
            pending_from.add(name)
            ops.extend(mutation.ops)
            changed.append(name)
        if mutation.warnings:
            warnings.extend(f"{name}: {warning}" for warning in mutation.warnings)
    return Result(current, pending, ops, warnings, failures, changed)


def _unchanged(
    obj: dict[str, Any], name: str, error: Exception, warnings: list[str], failures: list[Failure]
) -> Result:
    """The answer when mutation ``name`` failed unexpectedly: no patch at all, and why."""
    failures.append(Failure(name, "error", error))
    warnings = [*warnings, f"{name}: internal error, object admitted unchanged"]
    return Result(obj, [], [], warnings, failures, [], failed=True)


class Mutated(NamedTuple):
    obj: dict[str, Any]
    patch: list[Op]
    warnings: list[str]


def mutate_object(obj: dict[str, Any], config: Config) -> Mutated:
    """What the webhook would do to a Pod or Job manifest, for the offline ``mutate`` command.

    The kind comes from the object itself; other kinds come back unchanged with an empty patch.
    The object is treated as a CREATE, the only operation the webhook is registered for.
    """
    kind = obj.get("kind")
    result = run(obj, kind if isinstance(kind, str) else "", config)
    return Mutated(result.obj, result.ops, result.warnings)
