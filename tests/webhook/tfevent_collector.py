"""Runs Katib's TFEvent collector ``main.py`` from Katib's module source up to the point where it waits.

Usage: ``python tfevent_collector.py KATIB_SOURCE_DIR ARGS...``. The collector's own ``parse_options``
and its reading of ``-w`` run unchanged; only the modules it talks to the world with (gRPC, the
TensorFlow event loader, the process waiter) are stand-ins. The stand-in waiter prints the options the
collector passed to it as JSON and ends the run, so nothing waits and nothing connects.
"""

from __future__ import annotations

import json
import runpy
import sys
import types
from pathlib import Path
from typing import Any

COLLECTOR = "cmd/metricscollector/v1beta1/tfevent-metricscollector/main.py"
COMMON = "pkg/metricscollector/v1beta1/common"


class WaitReachedError(Exception):
    """The collector got as far as waiting: what this run wanted to see."""


def wait_main_processes(**options: Any) -> None:
    print(json.dumps(options))
    raise WaitReachedError


def stand_ins() -> dict[str, types.ModuleType]:
    modules = {
        name: types.ModuleType(name) for name in ("api_pb2", "api_pb2_grpc", "grpc", "pns", "tfevent_loader")
    }
    modules["pns"].WaitMainProcesses = wait_main_processes  # type: ignore[attr-defined]
    modules["tfevent_loader"].MetricsCollector = object  # type: ignore[attr-defined]
    return modules


def main() -> int:
    source = Path(sys.argv[1])
    sys.modules.update(stand_ins())
    sys.path.insert(0, str(source / COMMON))  # Katib's const.py
    sys.argv = ["main.py", *sys.argv[2:]]
    try:
        runpy.run_path(str(source / COLLECTOR), run_name="__main__")
    except WaitReachedError:
        return 0
    print("the collector ended without waiting", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
