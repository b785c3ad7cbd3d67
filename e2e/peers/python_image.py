"""A virtualenv of this machine, runnable in a container of the local node without copying it into an image.

The virtualenv and the Python installation it was made from are mounted read-only from the host at their
own paths (the venv's ``pyvenv.cfg`` and interpreter link name them absolutely, and together they are
hundreds of megabytes). The image's one layer holds only BusyBox (for ``sh``) and the shared libraries the
interpreter and every extension module of both trees link against, found with ``ldd``: a few megabytes,
and nothing else of the host's ``/usr`` is visible in the container.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.framework import oci

_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(?P<path>/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def ldd_libraries(output: str) -> list[str]:
    """The absolute library paths an ``ldd`` listing resolves to (the loader included), in order, once each.
    ``not found`` lines raise: the program would not start in the container either."""
    missing = [line.strip() for line in output.splitlines() if "not found" in line]
    if missing:
        raise FileNotFoundError(f"unresolved shared libraries: {missing}")
    found: list[str] = []
    for line in output.splitlines():
        match = _LDD_LINE.match(line)
        if match and match["path"] not in found:
            found.append(match["path"])
    return found


def _is_beneath(path: str, roots: Iterable[Path]) -> bool:
    return any(Path(path).is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class PythonRuntime:
    """A virtualenv, the installation it points to, and the host libraries both need."""

    venv: Path
    base_prefix: Path
    libraries: tuple[str, ...]

    @property
    def roots(self) -> tuple[Path, ...]:
        """The host directories mounted into the container, at the same paths."""
        return (self.venv, self.base_prefix)

    def layer(self, busybox: oci.Layer) -> oci.Layer:
        """``busybox`` plus every library, at the path the loader looks for it, with the host file's bytes."""
        files = {**busybox.files, **{path: Path(path).resolve() for path in self.libraries}}
        return oci.Layer(files=files, symlinks=busybox.symlinks, directories=busybox.directories)

    def volumes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The Pod's hostPath volumes and a container's read-only mounts of ``roots``."""
        names = [f"python-{index}" for index in range(len(self.roots))]
        volumes = [
            {"name": name, "hostPath": {"path": str(root), "type": "Directory"}}
            for name, root in zip(names, self.roots, strict=True)
        ]
        mounts = [
            {"name": name, "mountPath": str(root), "readOnly": True}
            for name, root in zip(names, self.roots, strict=True)
        ]
        return volumes, mounts


def python_runtime(venv_python: Path) -> PythonRuntime:
    """What it takes to run ``venv_python`` (a virtualenv's ``bin/python``) in a container."""
    venv = venv_python.parent.parent
    base_prefix = Path(
        subprocess.run(
            [str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
    )  # fmt: skip
    roots = (venv, base_prefix)
    objects = [venv_python.resolve()]
    for root in roots:
        objects += [path for path in root.rglob("*.so*") if path.is_file() and ".so" in path.name]
    libraries: list[str] = []
    for path in objects:
        listing = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60, check=False)
        if listing.returncode != 0:
            continue  # not a dynamic object (a static library, a linker script)
        for library in ldd_libraries(listing.stdout):
            if library not in libraries and not _is_beneath(library, roots):
                libraries.append(library)
    return PythonRuntime(venv, base_prefix, tuple(sorted(libraries)))
