#!/usr/bin/env bash
# Builds Kyverno's admission controller for the pod-creation benchmark's optional Kyverno side into
# ${KUBEFLOW_EXTENSION_CACHE:-~/.cache/kubeflow-extension}/kyverno-<version>/bin/kyverno, skipping it when
# already there. The module comes from the Go module proxy; nothing is written inside the repository.
# Not part of CI: about 3 minutes on 2 cores and a ~180 MB binary.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../e2e/versions.env
source "$here/../e2e/versions.env"
cache=${KUBEFLOW_EXTENSION_CACHE:-$HOME/.cache/kubeflow-extension}
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
dir=$cache/kyverno-$KYVERNO_VERSION

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [[ -x $dir/bin/kyverno && -d $dir/crds ]]; then log "kyverno $KYVERNO_VERSION: cached"; exit 0; fi
log "kyverno $KYVERNO_VERSION: building"
mkdir -p "$dir/src" && cd "$dir/src"
if [[ ! -f go.mod ]]; then
  go mod init local.invalid/kyvernobin >/dev/null 2>&1
  # Kyverno's go.mod replaces the Pod Security Admission library by its own fork; a replace only applies
  # in the main module, so the wrapper repeats it.
  go mod edit -replace="k8s.io/pod-security-admission=$KYVERNO_PSA_REPLACEMENT"
fi
go get "github.com/kyverno/kyverno@v$KYVERNO_VERSION" >/dev/null
stamp="-X github.com/kyverno/kyverno/pkg/version.BuildVersion=v$KYVERNO_VERSION"
if [[ ! -x $dir/bin/kyverno ]]; then
  go build -trimpath -ldflags "-s -w $stamp" -o "$dir/bin/kyverno" github.com/kyverno/kyverno/cmd/kyverno
fi
# Its CRDs, applied to the local control plane before it starts (read from the module, kept in the cache).
source_dir=$(go mod download -json "github.com/kyverno/kyverno@v$KYVERNO_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
rm -rf "$dir/crds" && mkdir -p "$dir/crds"
cp -r "$source_dir/config/crds/." "$dir/crds/"
chmod -R u+w "$dir/crds"
log "kyverno $KYVERNO_VERSION: done"
