"""Katib's database for the local node's trials: a private PostgreSQL (Debian's) on a loopback port and
Katib's own db-manager in front of it, as Katib deploys them (DB_NAME=postgres), stopped by PID.

The trial Pods' metrics collector reports to the db-manager's gRPC port; ``observation_logs()`` reads the
logs back through the db-manager's own API (``GetObservationLog``), as Katib's controller does.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from e2e.cluster.controlplane import LOOPBACK
from e2e.framework.processes import ManagedProcess, client_environment, free_port, wait_until

POSTGRES_USER = "postgres"
"""The system account PostgreSQL runs as (it refuses root)."""
DATABASE = "katib"
DB_USER = "katib"
READY_TIMEOUT = 120.0


def postgres_bin() -> Path:
    """Debian's newest installed PostgreSQL server programs (package postgresql)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1].parent


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((LOOPBACK, port)) == 0


class KatibDatabase:
    """PostgreSQL + Katib's db-manager on 127.0.0.1; ``address`` is what the collector dials."""

    def __init__(self, katib_bin: Path, *, keep_run_dir: bool = False) -> None:
        self.katib_bin = katib_bin
        self.keep_run_dir = keep_run_dir
        shm = Path("/dev/shm")
        self.run_dir = Path(tempfile.mkdtemp(prefix="kfext-katibdb-", dir=shm if shm.is_dir() else None))
        self.run_dir.chmod(0o711)  # PostgreSQL's account reaches its own directory inside
        self.logs_dir = self.run_dir / "logs"
        self.postgres_port = free_port()
        self.manager_port = free_port()
        self.password = secrets.token_hex(16)
        self.processes: list[ManagedProcess] = []
        self._failed = False

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.manager_port}"

    def __enter__(self) -> KatibDatabase:
        try:
            self.start()
        except BaseException:
            self._failed = True
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if isinstance(error, Exception):
            self._failed = True
        self.stop()

    def _as_postgres(self, *argv: str | Path) -> list[str]:
        return [
            "setpriv",
            f"--reuid={POSTGRES_USER}",
            f"--regid={POSTGRES_USER}",
            "--init-groups",
            *map(str, argv),
        ]

    def start(self) -> None:
        account = pwd.getpwnam(POSTGRES_USER)
        pg_dir = self.run_dir / "postgres"
        for directory in (pg_dir, pg_dir / "socket"):
            directory.mkdir(mode=0o700)
            os.chown(directory, account.pw_uid, account.pw_gid)
        password_file = pg_dir / "password"
        password_file.write_text(self.password + "\n")
        os.chown(password_file, account.pw_uid, account.pw_gid)
        binaries = postgres_bin()
        subprocess.run(
            self._as_postgres(
                binaries / "initdb", f"--pgdata={pg_dir / 'data'}", f"--username={DB_USER}",
                f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync",
            ),
            check=True, capture_output=True, timeout=300, cwd=pg_dir,
        )  # fmt: skip
        postgres = self._spawn(
            "postgres",
            self._as_postgres(
                binaries / "postgres", "-D", pg_dir / "data", "-p", str(self.postgres_port),
                "-c", f"listen_addresses={LOOPBACK}", "-c", f"unix_socket_directories={pg_dir / 'socket'}",
                "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "shared_buffers=16MB",
            ),
            cwd=pg_dir,
        )  # fmt: skip
        wait_until(
            lambda: _listening(self.postgres_port), timeout=READY_TIMEOUT, what="PostgreSQL", watch=[postgres]
        )
        self.psql("postgres", f"CREATE DATABASE {DATABASE}")

        manager = self._spawn(
            "katib-db-manager",
            [str(self.katib_bin / "db-manager"), f"--listen-address={self.address}", "--connect-timeout=60s"],
            env={
                "DB_NAME": "postgres",
                "DB_USER": DB_USER,
                "DB_PASSWORD": self.password,
                "KATIB_POSTGRESQL_DB_HOST": LOOPBACK,
                "KATIB_POSTGRESQL_DB_PORT": str(self.postgres_port),
                "KATIB_POSTGRESQL_DB_DATABASE": DATABASE,
            },
        )
        wait_until(
            lambda: _listening(self.manager_port),
            timeout=READY_TIMEOUT,
            what="Katib's db-manager",
            watch=[manager],
        )

    def _spawn(
        self,
        name: str,
        argv: list[str] | list[str | Path],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        process = ManagedProcess(
            name, [str(a) for a in argv], self.logs_dir / f"{name}.log",
            env={**client_environment(), **(env or {})}, cwd=cwd or self.run_dir,
        )  # fmt: skip
        self.processes.append(process)
        process.start()
        return process

    def psql(self, database: str, statement: str) -> str:
        """Run one SQL statement as Katib's database user; its rows, unaligned."""
        result = subprocess.run(
            ["psql", "-h", LOOPBACK, "-p", str(self.postgres_port), "-U", DB_USER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", statement],
            env={**client_environment(), "PGPASSWORD": self.password},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {result.stderr.strip()}")
        return result.stdout

    def observation_logs(self, trial: str) -> list[dict[str, Any]]:
        """The trial's metric logs as Katib's db-manager answers ``GetObservationLog`` (every metric)."""
        result = subprocess.run(
            [str(self.katib_bin / "observation-logs"), f"--db-manager={self.address}", trial],
            capture_output=True, text=True, timeout=60, check=False, env=client_environment(),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"observation-logs {trial}: {result.stderr.strip()}")
        logs: list[dict[str, Any]] = json.loads(result.stdout).get("metricLogs") or []
        return logs

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=30)
        self.processes = []
        if self.keep_run_dir or self._failed:
            print(f"Katib database files kept in {self.run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"----- {p.name} {p.log_path}\n{p.tail(lines)}" for p in self.processes)
