"""Prometheus metrics: a request counter by outcome and a latency histogram, per service.

The values are plain numbers updated on the event loop, and become metric families only when
``/metrics`` is scraped (prometheus_client's custom collector interface). prometheus_client's own
Counter and Histogram children take a lock on every update, about 17k instructions per webhook review
(callgrind); every update here runs on the one event-loop thread, so none is needed.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

# Admission and hook answers are expected in milliseconds; the top buckets catch stalls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)
_BUCKET_LABELS = (*map(str, LATENCY_BUCKETS), "+Inf")
"""The ``le`` label of each bucket, the last for anything above the top bound."""


@dataclass
class _Latencies:
    """One label value's histogram: a count per bucket (the last for anything above the top bound)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    created: float = field(default_factory=time.time)


@dataclass(eq=False)  # the registry keys its collectors by identity
class RequestMetrics:
    """Counts requests by the given labels and times them by the first, in a registry of the service's
    own: ``{prefix}_requests_total`` and ``{prefix}_request_duration_seconds``."""

    prefix: str
    labels: tuple[str, ...]
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}
        self._first_counted: dict[tuple[str, ...], float] = {}
        """By label values: when the combination was first counted (its series' ``_created``)."""
        self._latencies: dict[str, _Latencies] = {}
        self.registry.register(self)

    def count(self, *values: str) -> None:
        if values not in self._counts:
            self._first_counted[values] = time.time()
            self._counts[values] = 0
        self._counts[values] += 1

    def observe(self, first_label: str, start: float) -> None:
        """Record the time since ``start`` (a ``time.perf_counter()`` reading)."""
        elapsed = time.perf_counter() - start
        latencies = self._latencies.get(first_label)
        if latencies is None:
            latencies = self._latencies[first_label] = _Latencies()
        latencies.counts[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        latencies.total += elapsed

    @contextmanager
    def timed(self, first_label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(first_label, start)

    def describe(self) -> list[Metric]:
        """The families without samples, for the registry's check of duplicate names."""
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        requests, latency, latency_created = self._families()
        for values, count in self._counts.items():
            requests.add_metric(values, count, created=self._first_counted[values])
        for value, latencies in self._latencies.items():
            cumulative = list(accumulate(latencies.counts))
            latency.add_metric([value], list(zip(_BUCKET_LABELS, cumulative, strict=True)), latencies.total)
            latency_created.add_metric([value], latencies.created)
        yield requests
        yield latency
        if latency_created.samples:  # as prometheus_client: no family for a histogram never observed
            yield latency_created

    def _families(self) -> tuple[CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily]:
        """The families and series prometheus_client's Counter and Histogram expose."""
        latency = f"{self.prefix}_request_duration_seconds"
        latency_help = "Time from a parsed request to its encoded answer."
        return (
            CounterMetricFamily(
                f"{self.prefix}_requests", "Requests answered, by outcome.", labels=self.labels
            ),
            HistogramMetricFamily(latency, latency_help, labels=self.labels[:1]),
            GaugeMetricFamily(f"{latency}_created", latency_help, labels=self.labels[:1]),
        )
