"""e2e/build-control-plane.sh stops at the first step that fails: it exits non-zero, no later step runs, and
nothing is left in the cache that a later run would take as built (a binary, or Katib's sources stamp)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from e2e.framework import versions

# Each stand-in records its call and fails. Only `go` is meant to be reached; `dpkg-query` and `apt-get`
# stand in too, so that a script going on past the failure skips BusyBox's step rather than reach apt and
# the network.
FAILING_TOOL = '#!/bin/sh\necho "${0##*/} $*" >>"$FAKE_TOOL_CALLS"\nexit 1\n'
STAND_INS = ("go", "dpkg-query", "apt-get")
LOG_LINE = re.compile(r"^\[build \d\d:\d\d:\d\d\] (.*)$", re.MULTILINE)


def test_all_stops_at_the_first_failing_build(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in STAND_INS:
        tool = tools / name
        tool.write_text(FAILING_TOOL)
        tool.chmod(0o755)
    cache = tmp_path / "cache"
    calls = tmp_path / "calls"
    env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        versions.CACHE_ENV: str(cache),
        "FAKE_TOOL_CALLS": str(calls),
    }

    result = subprocess.run(
        ["bash", str(versions.BUILD_SCRIPT), "all"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    report = f"exit status {result.returncode}\nstderr:\n{result.stderr}"
    assert result.returncode != 0, report
    # etcd is the first step and runs go first: it starts, and neither it nor any later step gets further.
    assert LOG_LINE.findall(result.stderr) == [f"etcd {versions.pin('ETCD_VERSION')}: building"], report
    assert calls.read_text().splitlines() == ["go mod init local.invalid/etcdbin"], report
    left = sorted(str(path.relative_to(cache)) for path in cache.rglob("*") if not path.is_dir())
    assert left == [], report
