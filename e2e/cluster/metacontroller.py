"""Run whichever Metacontroller the user has: the flags are read from the binary's own ``--help``.

The harness builds Metacontroller 1.5.20 (the newest release the Go module proxy serves), but clusters run
v4, whose flags differ: 1.5 takes its kubeconfig from ``--client-config-path`` (its ``--kubeconfig`` is
not wired up), serves metrics on ``--debug-addr`` and logs with klog's ``-v``; v4 reads ``--kubeconfig``
(controller-runtime), serves metrics on ``--metrics-address``, health probes on
``--health-probe-bind-address`` (default ``:8081``, all interfaces) and logs with ``--zap-log-level``.
``METACONTROLLER_BINARY=/path`` selects another binary and ``METACONTROLLER_CRDS=/path.yaml`` its CRDs
(read by ``e2e.framework.versions``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Go's flag package lists each flag as "  -name type" (one dash) at the start of a help line; pflag and
# others use "--name". Usage text lines are indented with a tab and do not start with a dash.
_FLAG = re.compile(r"^ {1,6}--?([A-Za-z][A-Za-z0-9_.-]*)", re.MULTILINE)


class UnsupportedMetacontrollerError(RuntimeError):
    """The binary advertises none of the flags the harness knows for a kubeconfig or a metrics address."""


def advertised_flags(help_text: str) -> frozenset[str]:
    """The flag names a program's ``--help`` output lists."""
    return frozenset(_FLAG.findall(help_text))


def read_help(binary: Path, timeout: float = 30.0) -> str:
    """``binary --help`` (stdout and stderr: Go's flag package prints usage to stderr and exits 0 or 2)."""
    result = subprocess.run(
        [str(binary), "--help"], capture_output=True, text=True, timeout=timeout, check=False
    )
    return result.stdout + result.stderr


@dataclass(frozen=True)
class Endpoints:
    """Where the local Metacontroller listens; ``metrics_url`` answers once it runs."""

    metrics_port: int
    health_port: int

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"


def _first(flags: Set[str], *candidates: str) -> str | None:
    return next((name for name in candidates if name in flags), None)


def arguments(flags: Set[str], kubeconfig: Path, endpoints: Endpoints) -> list[str]:
    """Command-line arguments for a Metacontroller advertising ``flags``: its kubeconfig, metrics and health
    endpoints on loopback, fast discovery (CRDs are applied during tests), verbose logs."""
    config_flag = _first(flags, "client-config-path", "kubeconfig")
    metrics_flag = _first(flags, "metrics-address", "debug-addr")
    if config_flag is None or metrics_flag is None:
        raise UnsupportedMetacontrollerError(
            "neither --client-config-path nor --kubeconfig, or neither --metrics-address nor --debug-addr, "
            f"in its --help; it lists: {', '.join(sorted(flags)) or 'no flags'}"
        )
    argv = [f"--{config_flag}={kubeconfig}", f"--{metrics_flag}={LOOPBACK}:{endpoints.metrics_port}"]
    if "health-probe-bind-address" in flags:
        argv.append(f"--health-probe-bind-address={LOOPBACK}:{endpoints.health_port}")
    if "discovery-interval" in flags:
        argv.append("--discovery-interval=1s")
    # The defaults (5 QPS) throttle a discovery pass every second.
    if "client-go-qps" in flags:
        argv.append("--client-go-qps=100")
    if "client-go-burst" in flags:
        argv.append("--client-go-burst=200")
    log_flag = _first(flags, "zap-log-level", "v")
    if log_flag is not None:
        argv.append(f"--{log_flag}=4")
    return argv
