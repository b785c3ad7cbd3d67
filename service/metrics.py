"""Prometheus metrics: a request counter by outcome and a latency histogram, per service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

# Admission and hook answers are expected in milliseconds; the top buckets catch stalls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


@dataclass
class RequestMetrics:
    """Counts requests by the given labels and times them, in a registry of the service's own."""

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

    def count(self, *values: str) -> None:
        self.requests.labels(*values).inc()

    @contextmanager
    def timed(self, first_label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.latency.labels(first_label).observe(time.perf_counter() - start)
