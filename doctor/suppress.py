"""Findings an operator has judged and silenced, as ``istioctl analyze --suppress`` does: a known,
accepted state (Metacontroller running outside the cluster, KFX205) should not make every run exit 2.

A suppression names a code, and optionally the object as a finding prints it
(``KFX304=Namespace alice``); a suppressed finding is still shown, apart, and never counts in the exit
status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from doctor.codes import CATALOGUE
from doctor.findings import Finding


@dataclass(frozen=True)
class Suppression:
    code: str
    object: str | None = None

    def matches(self, finding: Finding) -> bool:
        return finding.code == self.code and self.object in (None, str(finding.object))


def parse(text: str) -> Suppression:
    """``CODE`` or ``CODE=<Kind [namespace/]name>``; ValueError for a code doctor does not have (a typo
    would silence nothing and pass unnoticed)."""
    code, separator, obj = text.partition("=")
    code = code.strip()
    if code not in {c.code for c in CATALOGUE}:
        raise ValueError(f"{code!r} is not one of doctor's codes (KFX001 ... see the README)")
    if separator and not obj.strip():
        raise ValueError(f"{text!r}: nothing after '='; give the object as a finding prints it")
    return Suppression(code, obj.strip() if separator else None)


def split(
    findings: Iterable[Finding], suppressions: Sequence[Suppression]
) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed), each in the order given."""
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for finding in findings:
        (suppressed if any(s.matches(finding) for s in suppressions) else kept).append(finding)
    return kept, suppressed


def unmatched(suppressions: Sequence[Suppression], suppressed: Sequence[Finding]) -> list[Suppression]:
    """Suppressions of an object that silenced nothing: a mistyped object would otherwise pass unseen.
    A code alone is not listed: its finding may simply be gone."""
    return [s for s in suppressions if s.object is not None and not any(s.matches(f) for f in suppressed)]
