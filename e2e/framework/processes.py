"""Child processes with their own log file, stopped by PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

T = TypeVar("T")

STOP_TIMEOUT = 10.0
NO_PROXY = "127.0.0.1,localhost"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS reports free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ours) with loopback excluded from any proxy."""
    env = dict(os.environ if base is None else base)
    for name in ("NO_PROXY", "no_proxy"):
        current = env.get(name, "")
        env[name] = f"{current},{NO_PROXY}" if current else NO_PROXY
    return env


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM if the starting thread dies first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * lines))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT, expected_exe: str | None = None) -> None:
    """Stop a process that is not our child (e.g. started by an earlier ``up``): SIGTERM, wait, SIGKILL.

    ``expected_exe`` guards against a recycled PID: the process is left alone if its command line does not
    start with it.
    """
    if expected_exe is not None:
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        except OSError:
            return
        if argv0 != expected_exe:
            return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class ManagedProcess:
    """One long-running program: started with a log file, stopped by its PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} alive={self.alive}>"

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"==> {' '.join(self.argv)}\n".encode())
        self._log.flush()
        preexec: Callable[[], None] | None = _die_with_parent if self.die_with_parent else None
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop children in order.
            start_new_session=True,
            preexec_fn=preexec,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Safe to call twice."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def check_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self._popen is not None and self._popen.poll() is not None:
            raise ProcessExitedError(self)

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


_LIVE_GROUPS: dict[ProcessGroup, None] = {}
"""Started groups in start order (a dict keeps it): stopped newest first when the interpreter exits."""


@atexit.register
def _stop_live_groups() -> None:
    for group in reversed(list(_LIVE_GROUPS)):
        group.stop()


class ProcessGroup:
    """Local programs started together and stopped together: ``start()``/``stop()``, or ``with``.

    What the control plane and the node share: a group still running when the interpreter exits is
    stopped; a failure while starting (or inside ``with``) prints every log tail and keeps the run
    directory, for the test report. Subclasses set ``run_dir``/``logs_dir`` and write ``_start`` and
    ``stop`` (which calls ``_stopped``).
    """

    run_dir: Path
    logs_dir: Path
    die_with_parent: bool = True

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []
        self.timings: dict[str, float] = {}
        self._failed = False
        self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if isinstance(error, Exception):  # not KeyboardInterrupt or SystemExit: those are a stop request
            self.report_failure()
        self.stop()

    def start(self) -> Self:
        """Bring everything up and wait until it is ready; on failure, report, stop and re-raise."""
        if self._started:
            return self
        self._started = True
        _LIVE_GROUPS[self] = None
        began = time.monotonic()
        try:
            self._start()
        except BaseException as error:
            if isinstance(error, Exception):
                self.report_failure()
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - began
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _stopped(self) -> None:
        """Forget the group as running (a later ``stop`` is a no-op)."""
        _LIVE_GROUPS.pop(self, None)
        self._started = False

    def _spawn(self, name: str, argv: Sequence[str | Path]) -> ManagedProcess:
        """Start one program of the group, logging to ``logs_dir/<name>.log``."""
        process = ManagedProcess(
            name,
            [str(a) for a in argv],
            self.logs_dir / f"{name}.log",
            env=client_environment(),
            cwd=self.run_dir,
            die_with_parent=self.die_with_parent,
        )
        self.processes.append(process)
        process.start()
        return process

    def all_processes(self) -> list[ManagedProcess]:
        return list(self.processes)

    def log_tails(self, lines: int = 40) -> str:
        """The end of every process's log, one section each."""
        sections = []
        for process in self.all_processes():
            state = "running" if process.alive else f"exited {process.returncode}"
            sections.append(f"----- {process.name} ({state}) {process.log_path}\n{process.tail(lines)}")
        return "\n".join(sections)

    def report_failure(self, lines: int = 40) -> None:
        """Print each process's log tail to stderr and keep the run directory."""
        self._failed = True
        print(self.log_tails(lines), file=sys.stderr)


class ProcessExitedError(RuntimeError):
    def __init__(self, process: ManagedProcess) -> None:
        super().__init__(
            f"{process.name} exited with code {process.returncode}; log {process.log_path}:\n{process.tail()}"
        )
        self.process = process


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    watch: Sequence[ManagedProcess] = (),
) -> None:
    """Poll ``condition`` until it is true; fail fast if a watched process exits, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        for process in watch:
            process.check_alive()
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    what: str,
    interval: float = 0.25,
    watch: Sequence[ManagedProcess] = (),
) -> T:
    """Poll ``probe`` until it returns something truthy and return that; ``TimeoutError`` after ``timeout``
    (its message names ``what`` and the last value seen)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        for process in watch:
            process.check_alive()
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)
