"""Test-wide settings."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs on shared, noisy machines: examples are derived from the test (reproducible from the log) and
# no single example is failed for being slow. Locally, hypothesis explores new examples on every run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
