#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, Metacontroller, for `just e2e-node` kube-scheduler and
# the kubelet, and the programs of the e2e/katib module (run against Katib's own code by the tests), from
# their Go modules, and for the node trials a full BusyBox from Debian's source package, into
# ${KUBEFLOW_EXTENSION_CACHE:-~/.cache/kubeflow-extension}/<component>-<version>/, skipping any binary already there.
# Every module comes from the Go module proxy, every Debian source through apt; nothing is written inside the
# repository.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${KUBEFLOW_EXTENSION_CACHE:-$HOME/.cache/kubeflow-extension}
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
# The checksum database has no entry for Metacontroller (its go.mod names another module path).
export GONOSUMDB=github.com/metacontroller/metacontroller

k8s_dir=$cache/kubernetes-$KUBERNETES_VERSION
etcd_dir=$cache/etcd-$ETCD_VERSION
mc_dir=$cache/metacontroller-$METACONTROLLER_VERSION
katib_dir=$cache/katib-$KATIB_VERSION

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# A throw-away wrapper module per component, so that their dependency graphs never mix.
wrapper() {
  local dir=$1 name=$2 src=${3:-src}
  rm -rf "${dir:?}/$src" && mkdir -p "$dir/$src" && cd "$dir/$src"
  go mod init "local.invalid/$name" >/dev/null 2>&1
}

# Builds the named k8s.io/kubernetes commands (all from one wrapper module, in its own source directory so
# that two of these builds may run at once) unless every one of them is already there.
build_kubernetes_commands() {
  local label=$1 command missing=()
  shift
  for command in "$@"; do [[ -x $k8s_dir/bin/$command ]] || missing+=("$command"); done
  if ((${#missing[@]} == 0)); then log "kubernetes $KUBERNETES_VERSION $label: cached"; return; fi
  log "kubernetes $KUBERNETES_VERSION $label: building ${missing[*]}"
  wrapper "$k8s_dir" k8sbins "src-$label"
  local staging=0.${KUBERNETES_VERSION#1.} gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes requires each staging module at v0.0.0 and resolves it through a replace that only
  # applies inside its own repository; replace every one of them by its published twin.
  local module
  while read -r module; do
    go mod edit -replace="$module=$module@v$staging"
  done < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
  go get "k8s.io/kubernetes@v$KUBERNETES_VERSION" >/dev/null
  local minor=${KUBERNETES_VERSION#1.}; minor=${minor%%.*}
  local stamp="-X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION"
  stamp+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  go build -trimpath -ldflags "-s -w $stamp" -o "$k8s_dir/bin/" "${missing[@]/#/k8s.io/kubernetes/cmd/}"
  log "kubernetes $KUBERNETES_VERSION $label: done"
}

build_kubernetes() { build_kubernetes_commands control-plane kube-apiserver kube-controller-manager; }
build_node() { build_kubernetes_commands node kube-scheduler kubelet; }

build_etcd() {
  if [[ -x $etcd_dir/bin/etcd ]]; then log "etcd $ETCD_VERSION: cached"; return; fi
  log "etcd $ETCD_VERSION: building"
  wrapper "$etcd_dir" etcdbin
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$etcd_dir/bin/etcd" go.etcd.io/etcd/server/v3
  log "etcd $ETCD_VERSION: done"
}

build_metacontroller() {
  if [[ -x $mc_dir/bin/metacontroller ]]; then
    log "metacontroller $METACONTROLLER_VERSION: cached"; return; fi
  log "metacontroller $METACONTROLLER_VERSION: building"
  wrapper "$mc_dir" mcbin
  local upstream=github.com/metacontroller/metacontroller@v$METACONTROLLER_VERSION source_dir
  go mod edit -require=metacontroller@v0.0.0 -replace="metacontroller=$upstream"
  source_dir=$(go mod download -json "$upstream" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  # The replaced module's own replace lines do not apply here; repeat them so it builds as released.
  local line
  while read -r line; do go mod edit -replace="$line"; done < <(
    awk '/^replace \(/ {inside=1; next} inside && /^\)/ {inside=0}
         inside && $2 == "=>" && $3 !~ /^\./ {print $1 "=" $3 "@" $4}' "$source_dir/go.mod")
  printf 'package main\n\nimport _ "metacontroller"\n' >tools.go
  go mod tidy
  # reflect2 < 1.0.2 crashes at run time on Go >= 1.18 (it reads runtime map internals); the fixed
  # patch releases are drop-in.
  go get github.com/modern-go/reflect2@v1.0.2 github.com/json-iterator/go@v1.1.12
  go build -trimpath -ldflags "-s -w" -o "$mc_dir/bin/metacontroller" metacontroller
  log "metacontroller $METACONTROLLER_VERSION: done"
}

# e2e/katib is a module of this repository: its binaries are rebuilt whenever its files change, which the
# digest of its sources (in the name of a stamp file beside them) tells.
build_katib() {
  local module=$here/katib digest
  digest=$(cd "$module" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
  if [[ -f $katib_dir/bin/.sources-$digest ]]; then log "katib $KATIB_VERSION: cached"; return; fi
  grep -Eq "^(require )?[[:space:]]*github.com/kubeflow/katib v$KATIB_VERSION\$" "$module/go.mod" ||
    { log "e2e/katib/go.mod does not require github.com/kubeflow/katib v$KATIB_VERSION (versions.env)"; return 1; }
  log "katib $KATIB_VERSION: building"
  cd "$module"
  rm -rf "${katib_dir:?}/bin" && mkdir -p "$katib_dir/bin"
  go build -trimpath -ldflags "-s -w" -o "$katib_dir/bin/" ./cmd/...
  # Katib's own file metrics collector and db-manager as released, for the trials on the local node.
  go build -trimpath -ldflags "-s -w" -o "$katib_dir/bin/file-metricscollector" \
    github.com/kubeflow/katib/cmd/metricscollector/v1beta1/file-metricscollector
  go build -trimpath -ldflags "-s -w" -o "$katib_dir/bin/db-manager" github.com/kubeflow/katib/cmd/db-manager/v1beta1
  # Katib's file collector with its wait step replaced by a report of the options its main() computed.
  # go build -overlay refuses files beneath GOMODCACHE, so the probe builds from a copy of Katib's module
  # (outside the repository), replaced into a copy of this module.
  local source_dir probe=$katib_dir/wait-probe
  source_dir=$(go list -m -f '{{.Dir}}' github.com/kubeflow/katib)
  rm -rf "$probe" && mkdir -p "$probe/build"
  cp -r "$source_dir" "$probe/katib" && chmod -R u+w "$probe/katib"
  cp go.mod go.sum "$probe/build/"
  printf '{"Replace": {"%s": "%s"}}\n' "$probe/katib/pkg/metricscollector/v1beta1/common/pns.go" \
    "$module/_overlay/wait_probe.go" >"$probe/overlay.json"
  (cd "$probe/build" && go mod edit -replace=github.com/kubeflow/katib=../katib &&
    go build -trimpath -ldflags "-s -w" -overlay "$probe/overlay.json" \
      -o "$katib_dir/bin/file-metricscollector-wait-probe" \
      github.com/kubeflow/katib/cmd/metricscollector/v1beta1/file-metricscollector)
  # Where the module's source is, for the tests that run its Python collector's code from there.
  printf '%s\n' "$source_dir" >"$katib_dir/bin/katib-source-dir"
  touch "$katib_dir/bin/.sources-$digest"
  log "katib $KATIB_VERSION: done"
}

# BusyBox from Debian's source package of the installed busybox-static (the same version, Debian's patches
# applied), configured by busybox-full.config: the collector image of the node trials with `wget -T` and
# `pkill`, which Debian's own static build lacks. Rebuilt when that file changes (its digest names a stamp).
build_busybox() {
  local config=$here/busybox-full.config version digest dir work
  # Without the node's packages there is no node to run it on (bootstrap goes on; the node tests say why).
  if ! version=$(dpkg-query -W -f='${source:Version}' busybox-static 2>/dev/null) ||
    ! command -v gcc make dpkg-source >/dev/null; then
    log "busybox: skipped, the node's packages are missing (e2e/install-node-packages.sh)"; return 0
  fi
  dir=$cache/busybox-${version#*:}-full
  digest=$(sha256sum "$config" | cut -c1-16)
  if [[ -f $dir/bin/.config-$digest ]]; then log "busybox $version full: cached"; return; fi
  log "busybox $version full: building"
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the path as it is now: $work is local
  trap "rm -rf -- '$work'" EXIT
  # apt fetches the source through a private source list and lists directory (the machine's apt configuration
  # and package lists stay as they are) and checks every file against the Sources index signed by the
  # archive's key; the uploader's own signature on the .dsc would need debian-keyring, hence --no-check.
  local codename
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  printf 'deb-src [signed-by=%s] http://deb.debian.org/%s %s main\n' \
    "$keyring" debian "$codename" "$keyring" debian-security "$codename-security" >"$work/sources.list"
  mkdir -p "$work/lists/partial" "$work/sources.list.d" "$work/source"
  local apt=(apt-get -qq -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/sources.list.d"
    -o "Dir::State::Lists=$work/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o APT::Sandbox::User=root)
  "${apt[@]}" update
  (cd "$work/source" && "${apt[@]}" source --download-only "busybox=$version")
  dpkg-source --no-check --extract "$work/source/busybox_${version#*:}.dsc" "$work/busybox" >/dev/null
  cd "$work/busybox"
  make defconfig >/dev/null
  local line symbol settings=() setting='^(CONFIG_[A-Z0-9_]+)=|^# (CONFIG_[A-Z0-9_]+) is not set$'
  while read -r line; do
    [[ $line =~ $setting ]] || continue
    symbol=${BASH_REMATCH[1]:-${BASH_REMATCH[2]}}
    sed -i -e "/^$symbol=/d" -e "/^# $symbol is not set\$/d" .config
    printf '%s\n' "$line" >>.config
    settings+=("$line")
  done <"$config"
  { yes "" || true; } | make oldconfig >/dev/null
  for line in "${settings[@]}"; do
    grep -qxF -- "$line" .config || { log "busybox: $line did not hold in the configuration"; return 1; }
  done
  make -j"$(nproc)" busybox BB_EXTRA_VERSION="Debian $version source, busybox-full.config" >make.log 2>&1 ||
    { tail -n 40 make.log >&2; return 1; }
  rm -rf "${dir:?}/bin" && mkdir -p "$dir/bin"
  cp busybox "$dir/bin/busybox"
  cp .config "$dir/bin/busybox.config"
  touch "$dir/bin/.config-$digest"
  log "busybox $version full: done"
}

what=${1:-all}
case $what in
  all) (build_etcd) && (build_metacontroller) && (build_kubernetes) && (build_node) && (build_katib) &&
    (build_busybox) ;;
  etcd|metacontroller|kubernetes|node|katib|busybox) ("build_$what") ;;
  *) echo "usage: $0 [all|etcd|metacontroller|kubernetes|node|katib|busybox]" >&2; exit 2 ;;
esac
