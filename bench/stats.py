"""Percentiles, Prometheus histogram deltas and table formatting."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_BUCKET = re.compile(r"^(?P<name>\w+)_bucket\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)
_LE = re.compile(r'le="(?P<le>[^"]+)"')


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    values = sorted(latencies_s)
    return {
        "p50": percentile(values, 0.50) * 1000,
        "p99": percentile(values, 0.99) * 1000,
        "p999": percentile(values, 0.999) * 1000,
        "max": (values[-1] if values else math.nan) * 1000,
        "count": len(values),
    }


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a Prometheus histogram, summed over every label set but ``le``."""
    buckets: dict[float, float] = {}
    for match in _BUCKET.finditer(text):
        if match["name"] != name:
            continue
        le = _LE.search(match["labels"])
        if le is None:
            continue
        bound = math.inf if le["le"] == "+Inf" else float(le["le"])
        buckets[bound] = buckets.get(bound, 0.0) + float(match["value"])
    return buckets


def histogram_delta(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    return {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}


def histogram_percentile(cumulative: dict[float, float], fraction: float) -> float:
    """A percentile estimated as Prometheus' histogram_quantile does (linear within the bucket)."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return math.nan
    target = fraction * cumulative[bounds[-1]]
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= target:
            if math.isinf(bound):
                return previous_bound
            share = (target - previous_count) / (count - previous_count) if count > previous_count else 0
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def share_within(cumulative: dict[float, float], bound: float) -> float:
    """Fraction of observations at or below ``bound`` (one of the bucket bounds)."""
    total = cumulative.get(math.inf, 0.0)
    return cumulative.get(bound, math.nan) / total if total else math.nan


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (also readable on a terminal)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)
