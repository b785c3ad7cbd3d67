"""Prometheus metrics: a request counter by outcome and a latency histogram, per service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# Admission and hook answers are expected in milliseconds; the top buckets catch stalls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


@dataclass
class RequestMetrics:
    """Counts requests by the given labels and times them, in a registry of the service's own.

    The child of each label combination is looked up once and kept: label values are bounded by
    design, and ``labels()`` validates and locks on every call.
    """

    prefix: str
    labels: tuple[str, ...]
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.requests = Counter(
            f"{self.prefix}_requests", "Requests answered, by outcome.", self.labels, registry=self.registry
        )
        self.latency = Histogram(
            f"{self.prefix}_request_duration_seconds",
            "Time from a parsed request to its encoded answer.",
            self.labels[:1],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._counters: dict[tuple[str, ...], Any] = {}
        self._timers: dict[str, Any] = {}

    def count(self, *values: str) -> None:
        counter = self._counters.get(values)
        if counter is None:
            counter = self._counters[values] = self.requests.labels(*values)
        counter.inc()

    def observe(self, first_label: str, start: float) -> None:
        """Record the time since ``start`` (a ``time.perf_counter()`` reading)."""
        timer = self._timers.get(first_label)
        if timer is None:
            timer = self._timers[first_label] = self.latency.labels(first_label)
        timer.observe(time.perf_counter() - start)

    @contextmanager
    def timed(self, first_label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(first_label, start)
