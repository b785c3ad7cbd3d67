"""The findings for a person (text, errors first) or for a program (JSON, stable keys)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from doctor.findings import Finding


def as_json(
    findings: Sequence[Finding], facts: Mapping[str, object], suppressed: Sequence[Finding] = ()
) -> str:
    document = {
        "facts": facts,
        "findings": [dataclasses.asdict(f) for f in findings],
        "suppressed": [dataclasses.asdict(f) for f in suppressed],
    }
    return json.dumps(document, indent=2) + "\n"


def as_text(
    findings: Sequence[Finding], facts: Mapping[str, object], suppressed: Sequence[Finding] = ()
) -> str:
    lines = [f"{key}: {value if value is not None else 'not found'}" for key, value in facts.items()]
    lines.append("")
    ordered = sorted(findings, key=lambda f: f.severity != "error")
    for finding in ordered:
        lines.append(f"{finding.severity.upper()} {finding.code} {finding.object}: {finding.message}")
        lines.append(f"    fix: {finding.fix}")
    errors = sum(f.severity == "error" for f in findings)
    lines.append(
        f"{errors} error(s), {len(findings) - errors} warning(s)" if findings else "no problem found"
    )
    if suppressed:
        lines.append(f"suppressed (--suppress): {', '.join(f'{f.code} {f.object}' for f in suppressed)}")
    return "\n".join(lines) + "\n"
