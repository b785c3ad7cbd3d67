"""Running the project's image with podman the way the shipped Deployments run it: user 65532:65532, a
read-only root filesystem, no capabilities, no privilege escalation; on the host's network, so that the
services listen on 127.0.0.1 like the local control plane.

runc rather than crun (crun fails on cgroup v1 hosts) and explicit rlimits (podman's defaults are refused
inside some containers), the same as ``scripts/build-image.sh``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PODMAN = ("podman", "--runtime", "runc")
LIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
USER = "65532:65532"
UID = GID = 65532
TLS_DIR = "/etc/kubeflow-extension/tls"
"""Where the webhook's Deployment mounts its serving certificate."""


@dataclass(frozen=True)
class Container:
    """What ``podman run`` gets besides the image and its arguments."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Mapping[Path, str] = field(default_factory=dict)
    """Host path → path in the container, read-only."""
    tmpfs: Sequence[str] = ()
    network: str = "host"


def run_argv(
    image: str, container: Container, args: Sequence[str] = (), *, entrypoint: str | None = None
) -> list[str]:
    """``podman run`` in the foreground (podman passes SIGTERM on and removes the container on exit)."""
    argv = [*PODMAN, "run", "--rm", "--name", container.name, "--network", container.network, *LIMITS]
    argv += ["--user", USER, "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for path in container.tmpfs:
        argv += ["--tmpfs", f"{path}:rw,size=16m,mode=1777"]
    for source, target in container.mounts.items():
        argv += ["--volume", f"{source}:{target}:ro"]
    for name, value in sorted(container.env.items()):
        argv += ["--env", f"{name}={value}"]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    return [*argv, image, *args]


def remove(name: str) -> None:
    """Remove a container by name if it is still there (after its podman process was killed)."""
    subprocess.run([*PODMAN, "rm", "--force", "--ignore", name], capture_output=True, check=False, timeout=60)


def readable_copy(files: Mapping[str, Path], directory: Path) -> Path:
    """Copy ``files`` (name in the directory → source) into ``directory``, owned by the image's user and
    readable only by it, as the kubelet does for a Secret volume with ``fsGroup``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        target = directory / name
        target.write_bytes(source.read_bytes())
        target.chmod(0o400)
        os.chown(target, UID, GID)
    directory.chmod(0o500)
    os.chown(directory, UID, GID)
    return directory
