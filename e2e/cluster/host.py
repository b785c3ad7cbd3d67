"""What a kubelet and containerd change on this machine outside their own directories, recorded before
they start and put back after they stop (also after a failure).

The kubelet sets ``vm.overcommit_memory``, ``kernel.panic`` and ``kernel.panic_on_oops`` and creates
``/var/lib/kubelet/device-plugins`` and ``/var/log/containers`` whatever its flags; containerd 1.6 writes
``/run/containerd/{s,fifo}``; the kubelet's cgroupfs driver creates ``kubepods`` in every cgroup hierarchy;
the node's IP is a /32 added to ``lo``; the kubelet (and kube-proxy) leave iptables chains and nfacct
counters behind (``e2e.cluster.netfilter``). Only one node may change these at a time: ``host_lock()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2e.cluster.netfilter import NetfilterState

SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    # A Pod network (e2e/cluster): the CNI bridge plugin turns forwarding on for its gateway, and a Pod
    # reaching a Service backed by a Pod on the same bridge needs bridged traffic to pass iptables.
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
LINK_PREFIXES = ("kfext", "veth")
"""Network links a node may create (the CNI bridge, the host ends of Pods' veths): removed if new."""
CREATED_PATHS = (
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/log/containers"),
    Path("/run/containerd"),
    Path("/var/lib/cni"),
    Path("/run/netns"),
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBELET_CGROUP = "kubepods"
LOCK_NAME = "\0kubeflow-extension-node"
_MNT_DETACH = 2


def first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist (what removing undoes its creation), or
    None when ``path`` exists."""
    if path.exists():
        return None
    missing = path
    while not missing.parent.exists():
        missing = missing.parent
    return missing


def mount_points(mountinfo: str) -> list[str]:
    """The mount points listed in a ``/proc/<pid>/mountinfo`` text, octal escapes decoded."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def beneath(points: Iterable[str], roots: Iterable[Path]) -> list[str]:
    """The mount points at or below one of ``roots``, deepest first (the order to unmount them in)."""
    prefixes = [str(root).rstrip("/") for root in roots]
    inside = {p for p in points if any(p == r or p.startswith(r + "/") for r in prefixes)}
    return sorted(inside, key=lambda p: (p.count("/"), p), reverse=True)


def unmount_beneath(roots: Sequence[Path]) -> list[str]:
    """Detach every mount at or below ``roots``; returns the mount points that could not be detached."""
    libc = ctypes.CDLL(None, use_errno=True)
    failed: list[str] = []
    for _ in range(3):  # a detached parent can reveal a mount that was hidden under it
        points = beneath(mount_points(Path("/proc/self/mountinfo").read_text()), roots)
        if not points:
            return []
        failed = []
        for point in points:
            if libc.umount2(point.encode(), _MNT_DETACH) != 0 and ctypes.get_errno() != errno.EINVAL:
                failed.append(f"{point}: {os.strerror(ctypes.get_errno())}")
    return failed


def remove_cgroup_tree(directory: Path) -> list[str]:
    """rmdir a cgroup directory and its children, deepest first (their control files go with them)."""
    problems = []
    for current, _dirs, _files in os.walk(directory, topdown=False):
        try:
            os.rmdir(current)
        except OSError as error:
            problems.append(f"{current}: {error.strerror}")
    return problems


def _cgroup_dirs() -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    return sorted(p / KUBELET_CGROUP for p in CGROUP_ROOT.iterdir() if p.is_dir() and os.path.ismount(p))


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


def _links() -> frozenset[str]:
    """The names of this network namespace's links (``ip -o link`` prints ``N: name[@peer]: ...``)."""
    shown = _ip("-o", "link", "show").stdout
    return frozenset(line.split(": ")[1].split("@")[0] for line in shown.splitlines() if ": " in line)


@dataclass
class HostChanges:
    """The host state a node changes, as found before it started; ``restore()`` puts it back."""

    node_ip: str
    sysctls: dict[str, str] = field(default_factory=dict)
    created: list[Path] = field(default_factory=list)
    cgroups: list[Path] = field(default_factory=list)
    added_address: bool = False
    netfilter: NetfilterState | None = None
    links: frozenset[str] = frozenset()

    @classmethod
    def record(cls, node_ip: str) -> HostChanges:
        changes = cls(node_ip)
        for name in SYSCTLS:
            path = Path("/proc/sys") / name
            if path.exists():  # the bridge's only where bridge netfilter is built in or loaded
                changes.sysctls[name] = path.read_text().strip()
        changes.links = _links()
        changes.created = sorted({m for m in map(first_missing, CREATED_PATHS) if m is not None})
        changes.cgroups = [d for d in _cgroup_dirs() if not d.exists()]
        changes.netfilter = NetfilterState.record()
        return changes

    def add_node_address(self) -> None:
        """Put the node's IP on ``lo`` as a /32 (the kubelet refuses a loopback node IP)."""
        shown = _ip("-o", "-4", "addr", "show", "dev", "lo").stdout
        if f" {self.node_ip}/32 " in shown:
            return
        result = _ip("addr", "add", f"{self.node_ip}/32", "dev", "lo")
        if result.returncode != 0:
            raise RuntimeError(f"ip addr add {self.node_ip}/32 dev lo: {result.stderr.strip()}")
        self.added_address = True

    def restore(self) -> list[str]:
        """Undo every recorded change; returns what could not be undone (empty when the host is as found).
        Call it once the kubelet (and kube-proxy) are stopped: they would put their chains back."""
        problems = unmount_beneath(self.created)
        for name, value in self.sysctls.items():
            path = Path("/proc/sys") / name
            if path.read_text().strip() != value:
                try:
                    path.write_text(value)
                except OSError as error:
                    problems.append(f"sysctl {name}={value}: {error.strerror}")
        for path in self.created:
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"{path} could not be removed")
        for cgroup in self.cgroups:
            if cgroup.exists():
                problems += remove_cgroup_tree(cgroup)
        if self.added_address:
            result = _ip("addr", "del", f"{self.node_ip}/32", "dev", "lo")
            if result.returncode != 0:
                problems.append(f"ip addr del {self.node_ip}/32 dev lo: {result.stderr.strip()}")
            self.added_address = False
        for link in sorted(_links() - self.links):
            if link.startswith(LINK_PREFIXES):
                result = _ip("link", "delete", link)
                if result.returncode != 0 and link in _links():
                    problems.append(f"ip link delete {link}: {result.stderr.strip()}")
        if self.netfilter is not None:
            problems += self.netfilter.restore()
        return problems


@contextlib.contextmanager
def host_lock(timeout: float = 600.0) -> Iterator[None]:
    """Hold the machine-wide node lock, waiting up to ``timeout`` seconds for another run's node.

    The lock is an abstract Unix socket name: it leaves no file behind and the kernel releases it when its
    holder dies, however it dies.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                lock.bind(LOCK_NAME)
                break
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another local node held the node lock for over {timeout:.0f} s"
                    ) from None
                time.sleep(1)
        yield
    finally:
        lock.close()


class HostClaim:
    """The machine's node lock, taken with a record of the host as found (``host_lock``, ``HostChanges``):
    whoever runs a node holds one, and ``release()`` puts the host back before letting go."""

    def __init__(self, node_ip: str) -> None:
        self._lock = host_lock()
        self._lock.__enter__()
        try:
            self.changes = HostChanges.record(node_ip)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        self._held = True

    def release(self) -> list[str]:
        """Undo every recorded change and let the lock go (once); returns what could not be undone."""
        if not self._held:
            return []
        try:
            return self.changes.restore()
        finally:
            self._held = False
            self._lock.__exit__(None, None, None)
