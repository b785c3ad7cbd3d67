"""Figures a test prints for the reader of the run, outside pytest's output capture."""

from __future__ import annotations

import sys

import pytest


def terminal_line(request: pytest.FixtureRequest, line: str) -> None:
    """Write ``line`` on the terminal while the test runs (stderr when there is no terminal reporter)."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:
        print(line, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{line}")
