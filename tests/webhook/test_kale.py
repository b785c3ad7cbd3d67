import ast
import dataclasses
import functools
import http.client
import re
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes.client.exceptions
import pytest
import urllib3.connection
import urllib3.exceptions
from hypothesis import given
from hypothesis import strategies as st

from service.config import Config
from tests.webhook.katib_objects import kale_command, katib_wrapped, kubelet_expand, trial_pod
from webhook.mutations.kale import FORBIDDEN, HOOK, MARKER, SHELL_PROGRAM, mutate, retry_program
from webhook.patch import Mutation

CONFIG = Config()
FAST = dataclasses.replace(Config(), kale_retry_seconds=3, kale_retry_max_delay_seconds=1)
SPENT = dataclasses.replace(Config(), kale_retry_seconds=1, kale_retry_max_delay_seconds=1)

KFPUTILS = """
import os
calls = []
class ApiException(Exception):
    # The shape of kfp_server_api's and kubernetes' ApiException: status and reason as attributes.
    def __init__(self, status, reason):
        self.status, self.reason = status, reason
def get_run(run_id, host=None):
    calls.append(run_id)
    if len(calls) <= int(os.environ.get("STUB_FAILURES", "0")):
        status = int(os.environ.get("STUB_STATUS", "0"))
        if status:
            raise ApiException(status, os.environ["STUB_REASON"])
        raise ConnectionError("ml-pipeline unreachable, call %d" % len(calls))
    return {"status": "Succeeded"}
def _wait_kfp_run(run_id):
    return get_run(run_id)  # a module global, looked up at call time (Kale <= 0.6)
def create_and_wait_kfp_run(pipeline_id, run_name, experiment_name="Default", **kwargs):
    run = _wait_kfp_run("run-" + run_name)
    print("status=%s calls=%d" % (run["status"], len(calls)))
"""
KATIBUTILS = """
from kale.common import kfputils
def create_and_wait_kfp_run(pipeline_id, run_name, version_id=None, experiment_name="Default", **kwargs):
    run = kfputils.get_run("run-" + run_name)  # Kale >= 0.7
    print("status=%s calls=%d" % (run["status"], len(kfputils.calls)))
"""


@pytest.fixture
def stub_kale(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "kale" / "common").mkdir(parents=True)
    (root / "kale" / "__init__.py").write_text("")
    (root / "kale" / "common" / "__init__.py").write_text("")
    (root / "kale" / "common" / "kfputils.py").write_text(KFPUTILS)
    (root / "kale" / "common" / "katibutils.py").write_text(KATIBUTILS)
    (root / "kfputils.py").write_text(KFPUTILS)
    return root


def main_container(pod: dict[str, Any]) -> dict[str, Any]:
    main: dict[str, Any] = pod["spec"]["containers"][0]
    return main


def kale_pod(kale: str, log_dir: str = "/var/log/katib", wrapped: bool = True) -> dict[str, Any]:
    pod = trial_pod(kale=kale)
    main = main_container(pod)
    if wrapped:
        main.update(katib_wrapped(kale_command(kale), log_dir))
    else:
        main.pop("args")
        main["command"] = [kale_command(kale)]
    return pod


def patched(pod: dict[str, Any], config: Config = CONFIG) -> tuple[dict[str, Any], Mutation]:
    result = mutate(pod, config)
    return jsonpatch.apply_patch(pod, list(result.ops)), result


def shell_line(container: dict[str, Any]) -> str:
    """What the container's shell runs: Katib's args[0], or Kale's own one-string command."""
    line: str = container["args"][0] if container["command"][:2] == ["sh", "-c"] else container["command"][0]
    return line


def python_program(line: str) -> str:
    found = re.search(r'-c "([^"]*)"', line)
    assert found is not None, line
    return found.group(1)


def run_line(
    line: str,
    site: Path,
    tmp_path: Path,
    failures: int,
    status: int | None = None,
    reason: str = "",
    path: str = "/usr/bin:/bin",
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "PYTHONPATH": str(site), "STUB_FAILURES": str(failures)}
    if status is not None:
        env |= {"STUB_STATUS": str(status), "STUB_REASON": reason}
    return subprocess.run(
        ["sh", "-c", kubelet_expand(line, {})],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("kale", ["0.6", "0.7"])
@pytest.mark.parametrize("wrapped", [True, False], ids=["after-katib", "before-katib"])
def test_kale_program_gets_the_retry_before_the_hook(kale: str, wrapped: bool) -> None:
    pod = kale_pod(kale, wrapped=wrapped)
    after, result = patched(pod)
    field = "args" if wrapped else "command"
    assert [op["path"] for op in result.ops] == [f"/spec/containers/0/{field}/0"]
    before, now = shell_line(main_container(pod)), shell_line(main_container(after))
    hook = HOOK.search(before)
    assert hook is not None, before
    inserted = now[hook.start() : len(now) - (len(before) - hook.start())]
    assert now == before[: hook.start()] + inserted + before[hook.start() :]
    assert inserted.startswith(MARKER)
    assert not FORBIDDEN & set(inserted)
    # The whole patched program is valid Python 3.6, the trial image's version.
    ast.parse(python_program(now), feature_version=(3, 6))
    assert mutate(after, CONFIG).ops == ()
    assert main_container(after)["name"] == main_container(pod)["name"]


@pytest.mark.parametrize("module", ["kale.common.kfputils", "kale.common.katibutils", "kfputils"])
def test_retry_program_is_python_3_6_and_shell_safe(module: str) -> None:
    program = retry_program(module, 900, 60)
    ast.parse(program, feature_version=(3, 6))
    assert not FORBIDDEN & set(program)
    bound = re.findall(r"^import (\S+) as _kfx_module$", program, re.MULTILINE)
    assert bound == (["kfputils"] if module == "kfputils" else ["kale.common.kfputils"])


@pytest.mark.parametrize("kale", ["0.6", "0.7"])
def test_patched_trial_survives_transient_failures(kale: str, stub_kale: Path, tmp_path: Path) -> None:
    after, _ = patched(kale_pod(kale, log_dir=str(tmp_path)), FAST)
    completed = run_line(shell_line(main_container(after)), stub_kale, tmp_path, failures=2)
    log = (tmp_path / "metrics.log").read_text()
    assert completed.returncode == 0, log
    assert "status=Succeeded calls=3" in log
    assert log.count("get_run failed (ConnectionError") == 2
    assert [p.read_text().strip() for p in tmp_path.glob("*.pid")] == ["completed"]


@pytest.mark.parametrize(("status", "reason"), [(503, "Service Unavailable"), (429, "Too Many Requests")])
def test_patched_trial_retries_passing_http_errors_and_logs_their_status(
    status: int, reason: str, stub_kale: Path, tmp_path: Path
) -> None:
    after, _ = patched(kale_pod("0.7", log_dir=str(tmp_path)), FAST)
    completed = run_line(shell_line(main_container(after)), stub_kale, tmp_path, 2, status, reason)
    log = (tmp_path / "metrics.log").read_text()
    assert completed.returncode == 0, log
    assert "status=Succeeded calls=3" in log
    assert log.count(f"get_run failed (ApiException: HTTP {status} {reason}), retry") == 2
    assert "ApiException()" not in log


PERMANENT = [(404, "Not Found"), (401, "Unauthorized"), (403, "Forbidden")]


@pytest.mark.parametrize(("status", "reason"), PERMANENT)
def test_patched_trial_fails_at_once_on_a_permanent_http_error(
    status: int, reason: str, stub_kale: Path, tmp_path: Path
) -> None:
    after, _ = patched(kale_pod("0.7", log_dir=str(tmp_path)), CONFIG)  # a 900 s budget, if it retried
    completed = run_line(shell_line(main_container(after)), stub_kale, tmp_path, 1000, status, reason)
    log = (tmp_path / "metrics.log").read_text()
    assert completed.returncode != 0
    assert f"get_run failed (ApiException: HTTP {status} {reason}), not retried" in log
    assert "), retry " not in log
    assert "calls=" not in log
    assert log.count("Traceback") == 1
    assert not list(tmp_path.glob("*.pid"))


@functools.cache
def python36() -> str | None:
    """A CPython 3.6 (the trial images' version) if this machine has one: on PATH or from pyenv."""
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob("3.6.*/bin/python3.6"))
    on_path = shutil.which("python3.6")
    for found in [*map(str, pyenv), *([on_path] if on_path else [])]:
        try:
            probe = [found, "-c", "import sys; print(sys.version_info[:2])"]
            version = subprocess.run(probe, capture_output=True)
        except OSError:
            continue
        if version.stdout.strip() == b"(3, 6)":
            return found
    return None


@pytest.mark.skipif(python36() is None, reason="no CPython 3.6 on this machine")
@pytest.mark.parametrize("kale", ["0.6", "0.7"])
def test_patched_trial_runs_under_python_3_6(kale: str, stub_kale: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = python36()
    assert python is not None  # the test is skipped without one
    (bin_dir / "python3").symlink_to(python)
    after, _ = patched(kale_pod(kale, log_dir=str(tmp_path)), FAST)
    line = shell_line(main_container(after))
    path = f"{bin_dir}:/usr/bin:/bin"
    completed = run_line(line, stub_kale, tmp_path, 2, 503, "Service Unavailable", path=path)
    log = (tmp_path / "metrics.log").read_text()
    assert completed.returncode == 0, log
    assert "status=Succeeded calls=3" in log
    assert log.count("HTTP 503 Service Unavailable), retry") == 2
    (tmp_path / "metrics.log").unlink()
    completed = run_line(line, stub_kale, tmp_path, 1, 404, "Not Found", path=path)
    assert completed.returncode != 0
    assert "HTTP 404 Not Found), not retried" in (tmp_path / "metrics.log").read_text()


def retry_functions() -> dict[str, Any]:
    """The inserted program's functions, without its last lines (which rebind Kale's module)."""
    program = retry_program("kale.common.kfputils", 900, 60)
    namespace: dict[str, Any] = {}
    exec(program[: program.index("import kale.common.kfputils as")], namespace)
    return namespace


# What urllib3's errors carry; made, never connected.
POOL = urllib3.HTTPConnectionPool("127.0.0.1")
CONNECTION = urllib3.connection.HTTPConnection("127.0.0.1")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (http.client.RemoteDisconnected("Remote end closed connection without response"), True),
        (TimeoutError("timed out"), True),
        (socket.timeout("timed out"), True),  # noqa: UP041  (its own class on Python 3.6)
        (urllib3.exceptions.MaxRetryError(POOL, "/apis/v1beta1/runs/r", None), True),
        (urllib3.exceptions.ProtocolError("Connection aborted."), True),
        (urllib3.exceptions.ReadTimeoutError(POOL, "/apis/v1beta1/runs/r", "Read timed out."), True),
        (urllib3.exceptions.NewConnectionError(CONNECTION, "Failed to establish a new connection"), True),
        (kubernetes.client.exceptions.ApiException(status=503, reason="Service Unavailable"), True),
        (kubernetes.client.exceptions.ApiException(status=502, reason="Bad Gateway"), True),
        (kubernetes.client.exceptions.ApiException(status=429, reason="Too Many Requests"), True),
        (kubernetes.client.exceptions.ApiException(status=0, reason="SSLError"), True),
        (kubernetes.client.exceptions.ApiException(status=404, reason="Not Found"), False),
        (kubernetes.client.exceptions.ApiException(status=401, reason="Unauthorized"), False),
        (kubernetes.client.exceptions.ApiException(status=403, reason="Forbidden"), False),
        (kubernetes.client.exceptions.ApiException(status=400, reason="Bad Request"), False),
        (FileNotFoundError(2, "No such file or directory"), False),
        (ValueError("bad run id"), False),
        (AttributeError("'NoneType' object has no attribute 'run'"), False),
        (urllib3.exceptions.LocationParseError("http://[::1"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_transient_errors_are_retried(error: BaseException, transient: bool) -> None:
    assert retry_functions()["_kfx_transient"](error) is transient


def test_retry_log_names_the_http_status_and_reason() -> None:
    describe = retry_functions()["_kfx_describe"]
    error = kubernetes.client.exceptions.ApiException(status=503, reason="Service Unavailable")
    assert describe(error) == "ApiException: HTTP 503 Service Unavailable"
    assert describe(ConnectionRefusedError(111, "Connection refused")).startswith("ConnectionRefusedError: ")
    assert len(describe(ValueError("x" * 1000))) == 300


@pytest.mark.parametrize("kale", ["0.6", "0.7"])
def test_unpatched_trial_fails_on_the_first_error(kale: str, stub_kale: Path, tmp_path: Path) -> None:
    line = shell_line(main_container(kale_pod(kale, log_dir=str(tmp_path))))
    completed = run_line(line, stub_kale, tmp_path, failures=1)
    assert completed.returncode != 0
    assert "ConnectionError" in (tmp_path / "metrics.log").read_text()


def test_patched_trial_gives_up_when_the_budget_is_spent(stub_kale: Path, tmp_path: Path) -> None:
    after, _ = patched(kale_pod("0.7", log_dir=str(tmp_path)), SPENT)
    completed = run_line(shell_line(main_container(after)), stub_kale, tmp_path, failures=1000)
    log = (tmp_path / "metrics.log").read_text()
    assert completed.returncode != 0
    assert "giving up" in log
    assert "ConnectionError: ml-pipeline unreachable" in log  # the original error is re-raised
    assert 2 <= log.count("retry") <= 4
    assert not list(tmp_path.glob("*.pid"))


def test_bare_kfputils_module_and_argv_form(stub_kale: Path, tmp_path: Path) -> None:
    program = (
        "from kfputils import create_and_wait_kfp_run; create_and_wait_kfp_run(pipeline_id='p', run_name='t')"
    )
    pod = trial_pod(kale=None, proxy=None)
    main_container(pod).update({"command": ["python3", "-u", "-c", program], "args": []})
    after, result = patched(pod, FAST)
    assert [op["path"] for op in result.ops] == ["/spec/containers/0/command/3"]
    command = main_container(after)["command"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(stub_kale), "STUB_FAILURES": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "status=Succeeded calls=2" in completed.stdout
    assert "retry 1" in completed.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["python3", "-c", "print('hello')"],
        ["sh", "-c", 'python3 -u -c "import kale" && echo done'],
        ["echo", "from kale.common.kfputils import create_and_wait_kfp_run"],  # not a python program
        ["python3", "train.py", "-c", "from kfputils import create_and_wait_kfp_run"],  # -c is train.py's
    ],
)
def test_other_programs_are_not_touched(command: list[str]) -> None:
    pod = trial_pod(kale=None)
    main_container(pod).update({"command": command, "args": []})
    assert mutate(pod, CONFIG).ops == ()


def test_inserted_program_reads_well() -> None:
    program = retry_program("kale.common.kfputils", 900, 60)
    assert textwrap.dedent(program) == program
    assert "900" in program
    assert "60" in program


_WORD_BOUNDARY_FORM = re.compile(r'\bpython[\w.]*(?:\s+-[^\s"]+){0,8}?\s+-c\s+"(?P<program>[^"]*)"')


@given(
    st.lists(
        st.sampled_from(["python", "python3", "3", "x", "_", ".", "/", " ", "-u", " -c ", '"', "p=1", "&&"]),
        max_size=24,
    ).map("".join)
)
def test_the_shell_program_search_finds_what_a_word_boundary_before_python_would(line: str) -> None:
    assert [m.span("program") for m in SHELL_PROGRAM.finditer(line)] == [
        m.span("program") for m in _WORD_BOUNDARY_FORM.finditer(line)
    ]
