"""Real ``kfp`` clients from PyPI, each in its own cached virtualenv outside the repository.

The environments live in ``~/.cache/kubeflow-extension/kfp-<version>/`` and are reused while their recipe
is unchanged; a lock file keeps parallel runs from building one twice.
``python -m e2e.kfp_clients`` prepares them ahead of the tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("KFEXT_CACHE_DIR", Path.home() / ".cache" / "kubeflow-extension"))
VERSIONS = ("1.8.22", "2.17.3")
"""kfp 1.8.22 is what Kale 0.6/0.7 trial images run; 2.17.3 the newest 2.x."""
INSTALL_TIMEOUT = 900.0


def recipe(version: str) -> str:
    return f"kfp=={version}\n"


def python(version: str) -> Path:
    """The interpreter of the environment with ``kfp==version``, built on first use."""
    directory = CACHE / f"kfp-{version}"
    ready = directory / ".kubeflow-extension-recipe"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"kfp-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file() and ready.read_text() == recipe(version):
            return directory / "bin" / "python"
        shutil.rmtree(directory, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        pip = [
            str(directory / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        subprocess.run([*pip, *recipe(version).split()], check=True, timeout=INSTALL_TIMEOUT)
        ready.write_text(recipe(version))
    return directory / "bin" / "python"


def main() -> int:
    for version in VERSIONS:
        started = time.monotonic()
        print(f"kfp {version}: {python(version)} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
