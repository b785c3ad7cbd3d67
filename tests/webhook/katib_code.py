"""Katib's own code, run on our output: programs of the e2e/peers/katib module (built from Katib's Go module
by ``e2e/build-control-plane.sh katib``) and the TFEvent collector's Python source in that module.

For versions the Go module proxy no longer serves, ``fixtures/katib-collectors.json`` declares how each
collector reads its flags; Go's flag package (``flag-check``) and Python's argparse parse with those
declarations.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from e2e.framework import versions

FIXTURES = Path(__file__).parent / "fixtures"
COLLECTOR_FACTS = json.loads((FIXTURES / "katib-collectors.json").read_text())
TFEVENT_RUNNER = Path(__file__).with_name("tfevent_collector.py")


def program(name: str) -> Path:
    """A built program of the e2e/peers/katib module; the test fails (never skips) with the command to
    build it."""
    v = versions.load()
    path = v.katib_bin_dir / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing. Build it with: bash {versions.BUILD_SCRIPT} katib "
            f"(Katib {v.katib} from the Go module proxy)",
            pytrace=False,
        )
    return path


def katib_source_dir() -> Path:
    return Path(program("katib-source-dir").read_text().strip())


class Parsed(NamedTuple):
    """What a collector made of its arguments: a parse error (exit code 2), or whether it waits for all."""

    error: str | None
    wait_all: bool | None


def go_file_collector_v0_19(args: list[str]) -> Parsed:
    """Katib 0.19.0's own file collector main(), up to where it would wait for the processes."""
    done = subprocess.run(
        [program("file-metricscollector-wait-probe"), *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return Parsed(error=done.stderr.strip() or f"exit {done.returncode}", wait_all=None)
    options = json.loads(done.stdout)
    return Parsed(error=None, wait_all=options["WaitAll"])


def tfevent_collector_v0_19(args: list[str]) -> Parsed:
    """Katib 0.19.0's TFEvent collector main.py, run from the module's source up to its wait."""
    done = subprocess.run(
        [sys.executable, TFEVENT_RUNNER, katib_source_dir(), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        return Parsed(error=done.stderr.strip() or f"exit {done.returncode}", wait_all=None)
    return Parsed(error=None, wait_all=json.loads(done.stdout)["wait_all"])


def declared_go_collector(declaration: dict[str, Any], args: list[str]) -> Parsed:
    """An old Go collector: Go's flag package with the declared flags, -w read as the version reads it."""
    done = subprocess.run(
        [program("flag-check")],
        input=json.dumps({"flags": declaration["flags"], "args": args}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = json.loads(done.stdout)
    if done.returncode == 2:
        return Parsed(error=out["error"], wait_all=None)
    done.check_returncode()
    if "w" not in out["values"]:
        return Parsed(error=None, wait_all=declaration["wait_all_default"])
    return Parsed(error=None, wait_all=bool(out["parse_bool"]["w"]))


_PY_TYPES = {"str": str, "int": int, "bool": bool}


def declared_python_collector(declaration: dict[str, Any], args: list[str]) -> Parsed:
    """An old TFEvent collector: argparse with the declared options, -w read as the version reads it."""
    parser = argparse.ArgumentParser(add_help=True, exit_on_error=False)
    for option, kind in declaration["options"].items():
        parser.add_argument(option, dest=option.lstrip("-"), type=_PY_TYPES[kind])
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            opt = parser.parse_args(args)
    except SystemExit as stop:  # unrecognized arguments still exit 2 with exit_on_error=False
        return Parsed(error=stderr.getvalue().strip() or f"exit {stop.code}", wait_all=None)
    except argparse.ArgumentError as error:
        return Parsed(error=str(error), wait_all=None)
    read_as = declaration["read_as"]
    if read_as == "absent":
        return Parsed(error=None, wait_all=None)
    value = opt.w if opt.w is not None else declaration["wait_all_default"]
    if read_as == "python-bool":
        return Parsed(error=None, wait_all=bool(value))
    return Parsed(error=None, wait_all=str(value).lower() == "true")
