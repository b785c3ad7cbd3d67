"""Server processes for the benchmarks: start, wait until healthy, read CPU time and memory, stop."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.client import Connection, HTTPError
from service import certificates

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    """A test CA and a serving certificate for 127.0.0.1, as files."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls(directory: Path) -> Tls:
    now = datetime.datetime.now(datetime.UTC)
    ca = certificates.new_ca("kfext-bench-ca", now, datetime.timedelta(days=1))
    pair = certificates.issue(
        ca, "127.0.0.1", now, datetime.timedelta(days=1), ip_addresses=["127.0.0.1"], dns_names=["localhost"]
    )
    tls = Tls(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    tls.ca.write_bytes(ca.cert)
    tls.cert.write_bytes(pair.cert)
    tls.key.write_bytes(pair.key)
    return tls


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def default_environment() -> dict[str, str]:
    """This process's environment without the services' own settings (``KFEXT_*``): a process started
    with it runs with the defaults, whatever the shell that started the benchmark has set."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KFEXT_")}


class Server:
    """``python -m bench.server APP PORT [CERT KEY]`` as a child process, stopped by its PID."""

    def __init__(
        self,
        name: str,
        app: str,
        log_dir: Path,
        tls: Tls | None = None,
        root: Path = REPO_ROOT,
        launcher: Sequence[str] = (),
    ) -> None:
        """``root``: the source tree to serve from (another revision's, to compare side by side);
        ``launcher``: a command the server runs under (valgrind's, to count its instructions)."""
        self.name, self.app, self.tls, self.root, self.launcher = name, app, tls, root, launcher
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def context(self) -> ssl.SSLContext | None:
        return self.tls.client_context() if self.tls else None

    def connection(self) -> Connection:
        return Connection(HOST, self.port, self.context)

    def start(self, timeout: float = 30.0) -> Server:
        argv = [*self.launcher, sys.executable, "-m", "bench.server", self.app, str(self.port)]
        if self.tls:
            argv += [str(self.tls.cert), str(self.tls.key)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=log, cwd=self.root, env=default_environment()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                connection = self.connection()
                status, _ = connection.request("GET", "/healthz")
                connection.close()
                if status == 200:
                    return self
            except (OSError, HTTPError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _address(hex_address: str) -> str:
    """An address of /proc/net/{tcp,udp}[6] (host byte order per 32-bit word) as text, port dropped."""
    raw = bytes.fromhex(hex_address.split(":")[0])
    host_order = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(host_order))


def socket_addresses(pid: int) -> set[tuple[str, str, str]]:
    """(protocol, local address, remote address) of every inet socket the process holds now."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{protocol}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.add((protocol, _address(fields[1]), _address(fields[2])))
    return found


def is_loopback_only(local: str, remote: str) -> bool:
    """Bound to loopback, and connected to loopback or to nothing (a listener's remote is all zeros)."""

    def loopback(text: str) -> bool:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return address.is_loopback

    return loopback(local) and (loopback(remote) or ipaddress.ip_address(remote).is_unspecified)
