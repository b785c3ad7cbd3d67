import re
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.metrics import LATENCY_BUCKETS, RequestMetrics

_STAMPS = re.compile(r"^(\w+_(?:created|sum)\{[^}]*\}) \S+$", re.MULTILINE)


def _exposed(registry: CollectorRegistry) -> str:
    """The text exposition with creation times and sums (which depend on the clock) blanked."""
    return _STAMPS.sub(r"\1 X", generate_latest(registry).decode())


@pytest.mark.parametrize("elapsed", [[], [0.0001, 0.0005, 0.003, 0.003, 0.7, 9.0]])
def test_the_exposition_is_what_prometheus_clients_counter_and_histogram_give(
    elapsed: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = RequestMetrics("kfext_test", ("kind", "outcome"))
    registry = CollectorRegistry()
    requests = Counter(
        "kfext_test_requests", "Requests answered, by outcome.", ("kind", "outcome"), registry=registry
    )
    latency = Histogram(
        "kfext_test_request_duration_seconds",
        "Time from a parsed request to its encoded answer.",
        ("kind",),
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for index, seconds in enumerate(elapsed):
        kind = "Pod" if index % 3 else "Job"
        ours.count(kind, "patched")
        requests.labels(kind, "patched").inc()
        monkeypatch.setattr(time, "perf_counter", lambda seconds=seconds: seconds)
        ours.observe(kind, 0.0)  # exactly `seconds` after its start: bucket bounds are inclusive
        latency.labels(kind).observe(seconds)
    assert _exposed(ours.registry) == _exposed(registry)
    if elapsed:
        sums = re.findall(r'_sum\{kind="Pod"\} (\S+)', generate_latest(ours.registry).decode())
        assert float(sums[0]) == pytest.approx(sum(elapsed[1::3] + elapsed[2::3]))
