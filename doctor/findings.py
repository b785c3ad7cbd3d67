"""What a check reports: a stable code, its severity, the object it concerns and the fix.

Codes never change meaning once released: scripts and runbooks match on them, as they do on
``istioctl analyze``'s. The catalogue (``doctor.codes``) owns severity and the generic fix, so a check
only says what it saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Ref:
    """The object a finding concerns, named as ``kubectl get`` would take it."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    object: Ref
    fix: str


@dataclass(frozen=True)
class Code:
    """One entry of the catalogue: what the code means and what fixes it in general."""

    code: str
    severity: Severity
    title: str
    fix: str

    def at(self, ref: Ref, message: str, fix: str | None = None) -> Finding:
        return Finding(self.code, self.severity, message, ref, fix or self.fix)


def exit_status(findings: Iterable[Finding]) -> int:
    """0 when all pass, 1 on any error, 2 on warnings only: scripts can tell "broken" from "look at it"."""
    severities = {finding.severity for finding in findings}
    if "error" in severities:
        return 1
    return 2 if severities else 0
