"""Fuzz suite plumbing: the apps behind in-process drivers, the example budget, and the input count.

``FUZZ_EXAMPLES`` sets the hypothesis examples of each fuzz test (default below); every example sends one
or more generated inputs. The terminal summary prints how many inputs went through each endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from hooks.app import create_app as create_hooks_app
from service.config import Config
from tests.fuzz.asgi import EXPECTED_ERRORS_SEEN, Driver, LogSink, captured_logs
from tests.fuzz.checks import COUNTS, INTERNAL_ERRORS, MUTATION_FAILED, NOTES
from webhook.app import create_app as create_webhook_app

DEFAULT_EXAMPLES = 1200
"""About 100,000 inputs in all (every example of the path sweeps sends up to 61), in under two minutes on
two busy cores."""


def examples(share: float = 1.0) -> int:
    """This test's hypothesis examples: ``share`` of ``FUZZ_EXAMPLES``."""
    return max(1, int(int(os.environ.get("FUZZ_EXAMPLES", DEFAULT_EXAMPLES)) * share))


def fuzz(share: float = 1.0) -> settings:
    """Settings of a fuzz test: ``share`` of the example budget, no per-example deadline, no health check
    about slow or large data (huge strings are the point), the session-long drivers allowed."""
    return settings(
        max_examples=examples(share),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


_drivers: list[Driver] = []
_seconds: list[float] = []
"""Durations of the fuzz suite's test calls (the summary's time leaves other suites of the run out)."""


def _driver(app: object) -> Driver:
    driver = Driver(app)
    _drivers.append(driver)
    return driver


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.nodeid.startswith("tests/fuzz/"):
        _seconds.append(report.duration)


@pytest.fixture(scope="session")
def webhook_app() -> Iterator[Driver]:
    driver = _driver(create_webhook_app(Config()))
    yield driver
    driver.close()


@pytest.fixture(scope="session")
def hooks_app() -> Iterator[Driver]:
    driver = _driver(create_hooks_app(Config()))
    yield driver
    driver.close()


@pytest.fixture(autouse=True)
def logs() -> Iterator[LogSink]:
    """Every log line the apps write during a test is formatted; none may be an error."""
    with captured_logs("webhook", "hooks", "service", expected_errors=frozenset({MUTATION_FAILED})) as sink:
        yield sink
    assert not sink.errors, "the apps logged errors:\n" + "\n".join(sink.errors)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    sent = sum(driver.sent for driver in _drivers)
    if not sent:
        return
    seconds = sum(_seconds)
    by_endpoint: dict[str, int] = {}
    for key, count in COUNTS.items():
        endpoint = key.split(" ", 1)[0]
        by_endpoint[endpoint] = by_endpoint.get(endpoint, 0) + count
    parts = ", ".join(f"{endpoint} {count:,}" for endpoint, count in sorted(by_endpoint.items()))
    statuses = ", ".join(f"{key}: {count:,}" for key, count in sorted(COUNTS.items()))
    terminalreporter.write_sep("-", "fuzz")
    terminalreporter.write_line(f"fuzzed {sent:,} inputs in {seconds:.0f} s ({parts})")
    terminalreporter.write_line(f"answers: {statuses}")
    for note, count in sorted(NOTES.items()):
        terminalreporter.write_line(f"{note}: {count:,}")
    for error, count in EXPECTED_ERRORS_SEEN.most_common(5):
        terminalreporter.write_line(f"mutation failed ({count:,}): {error}")
    for body in INTERNAL_ERRORS:
        terminalreporter.write_line(f"internal error on a schema-invalid object: {body!r}")
