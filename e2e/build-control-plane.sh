#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, Metacontroller, for `just e2e-node` kube-scheduler and
# the kubelet, the programs of the e2e/peers/katib module (run against Katib's own code by the tests), and for the
# local cluster (step `cluster`) kube-proxy, CoreDNS and metrics-server, for doctor's oldest Kubernetes (step
# `oldest`) kube-apiserver and kube-controller-manager of that release, from their Go modules, and for the
# node trials a full BusyBox from Debian's source package, into
# ${KUBEFLOW_EXTENSION_CACHE:-~/.cache/kubeflow-extension}/<component>-<version>/, skipping any binary already there.
# Every module comes from the Go module proxy, every Debian source through apt; nothing is written inside the
# repository. `all` runs every step, each on its own: the first that fails stops the script with its status.
# Binaries and stamps are put in place only once their whole build (and its checks) succeeded, so a failed
# build leaves nothing that a later run would take as built.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${KUBEFLOW_EXTENSION_CACHE:-$HOME/.cache/kubeflow-extension}
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
# The checksum database has no entry for Metacontroller (its go.mod names another module path).
export GONOSUMDB=github.com/metacontroller/metacontroller

etcd_dir=$cache/etcd-$ETCD_VERSION
mc_dir=$cache/metacontroller-$METACONTROLLER_VERSION
katib_dir=$cache/katib-$KATIB_VERSION
coredns_dir=$cache/coredns-$COREDNS_VERSION
ms_dir=$cache/metrics-server-$METRICS_SERVER_VERSION

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# A throw-away wrapper module per component, so that their dependency graphs never mix.
wrapper() {
  local dir=$1 name=$2 src=${3:-src}
  rm -rf "${dir:?}/$src" && mkdir -p "$dir/$src" && cd "$dir/$src"
  go mod init "local.invalid/$name" >/dev/null 2>&1
}

# A fresh directory ($out) for a build's output beside <dir>/bin, on the same file system: `install_out` moves
# the binaries into bin/ (a rename each) once the whole build and its checks succeeded, so that a failed or
# interrupted build leaves none there. The directory goes when the step's subshell exits.
new_out() {
  mkdir -p "$1"
  out=$(mktemp -d "$1/.build-XXXXXX")
  # shellcheck disable=SC2064 # the path as it is now
  trap "rm -rf -- '$out'" EXIT
}
install_out() { mkdir -p "$1/bin" && mv -f -- "$out"/* "$1/bin/"; }

# A module's own replace lines do not apply once it is a dependency: the wrapper repeats them (those to
# another module version; a directory of its own repository has no counterpart here) so it builds as released.
repeat_replaces() {
  local replaces line
  replaces=$(go mod edit -json "$1" | python3 -c 'import json, sys
for r in json.load(sys.stdin).get("Replace") or ():
    old, new = r["Old"], r["New"]
    if "Version" in new:
        at = "@" + old["Version"] if "Version" in old else ""
        print(old["Path"] + at + "=" + new["Path"] + "@" + new["Version"])')
  for line in $replaces; do go mod edit -replace="$line"; done
}

# Builds the named k8s.io/kubernetes commands of one release (all from one wrapper module, in its own source
# directory so that two of these builds may run at once) unless every one of them is already there.
build_kubernetes_commands() {
  local version=$1 label=$2 command missing=() dir=$cache/kubernetes-$1
  shift 2
  for command in "$@"; do [[ -x $dir/bin/$command ]] || missing+=("$command"); done
  if ((${#missing[@]} == 0)); then log "kubernetes $version $label: cached"; return; fi
  log "kubernetes $version $label: building ${missing[*]}"
  wrapper "$dir" k8sbins "src-$label"
  local staging=0.${version#1.} gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes requires each staging module at v0.0.0 and resolves it through a replace that only
  # applies inside its own repository; replace every one of them by its published twin.
  local module
  while read -r module; do
    go mod edit -replace="$module=$module@v$staging"
  done < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
  go get "k8s.io/kubernetes@v$version" >/dev/null
  local minor=${version#1.}; minor=${minor%%.*}
  # Both packages its hack/lib/version.sh stamps: before 1.28 the aggregator's /version reads client-go's.
  local package stamp=""
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $package.gitVersion=v$version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  done
  new_out "$dir"
  go build -trimpath -ldflags "-s -w$stamp" -o "$out/" "${missing[@]/#/k8s.io/kubernetes/cmd/}"
  install_out "$dir"
  log "kubernetes $version $label: done"
}

build_kubernetes() {
  build_kubernetes_commands "$KUBERNETES_VERSION" control-plane kube-apiserver kube-controller-manager
}
build_node() { build_kubernetes_commands "$KUBERNETES_VERSION" node kube-scheduler kubelet; }
build_kube_proxy() { build_kubernetes_commands "$KUBERNETES_VERSION" proxy kube-proxy; }
# The oldest control plane doctor is run against (e2e/test_doctor.py).
build_oldest() {
  build_kubernetes_commands "$KUBERNETES_OLDEST_VERSION" control-plane kube-apiserver kube-controller-manager
}

build_etcd() {
  if [[ -x $etcd_dir/bin/etcd ]]; then log "etcd $ETCD_VERSION: cached"; return; fi
  log "etcd $ETCD_VERSION: building"
  wrapper "$etcd_dir" etcdbin
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  new_out "$etcd_dir"
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  install_out "$etcd_dir"
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
  repeat_replaces "$source_dir/go.mod"
  printf 'package main\n\nimport _ "metacontroller"\n' >tools.go
  go mod tidy
  # reflect2 < 1.0.2 crashes at run time on Go >= 1.18 (it reads runtime map internals); the fixed
  # patch releases are drop-in.
  go get github.com/modern-go/reflect2@v1.0.2 github.com/json-iterator/go@v1.1.12
  new_out "$mc_dir"
  go build -trimpath -ldflags "-s -w" -o "$out/metacontroller" metacontroller
  install_out "$mc_dir"
  log "metacontroller $METACONTROLLER_VERSION: done"
}

# CoreDNS with only what a cluster DNS for Pods needs. Its own main package (coredns.go@v1.15.0) imports every
# plugin through core/plugin, cloud SDKs included; the wrapper's main, written here, imports these plugins and
# runs coremain, with the server's directive list (the order in which plugins see a query) cut to them. The
# packages of log, cache and kubernetes register metadata, prometheus and transfer too (`-plugins` lists them);
# outside the directives, a Corefile cannot use them.
coredns_plugins=(bind ready health errors log cache kubernetes)

build_coredns() {
  if [[ -x $coredns_dir/bin/coredns ]]; then log "coredns $COREDNS_VERSION: cached"; return; fi
  log "coredns $COREDNS_VERSION: building"
  wrapper "$coredns_dir" corednsbin
  local module=github.com/coredns/coredns source_dir
  source_dir=$(go mod download -json "$module@v$COREDNS_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  # Each plugin by its import path in the version's core/plugin/zplugin.go, the directives in the order of its
  # core/dnsserver/zdirectives.go.
  local plugin directives=() wanted=" ${coredns_plugins[*]} "
  for plugin in "${coredns_plugins[@]}"; do
    grep -qF "_ \"$module/plugin/$plugin\"" "$source_dir/core/plugin/zplugin.go" ||
      { log "coredns: core/plugin/zplugin.go@v$COREDNS_VERSION has no plugin/$plugin"; return 1; }
  done
  while read -r plugin; do
    if [[ $wanted == *" $plugin "* ]]; then directives+=("$plugin"); fi
  done < <(sed -n 's/^\t"\([a-z0-9_]*\)",$/\1/p' "$source_dir/core/dnsserver/zdirectives.go")
  ((${#directives[@]} == ${#coredns_plugins[@]})) ||
    { log "coredns: core/dnsserver/zdirectives.go@v$COREDNS_VERSION lists only ${directives[*]}"; return 1; }
  {
    printf 'package main\n\nimport (\n\t"%s/core/dnsserver"\n\t"%s/coremain"\n\n' "$module" "$module"
    printf '\t_ "%s"\n' "${directives[@]/#/$module/plugin/}"
    printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{\n'
    printf '\t\t"%s",\n' "${directives[@]}"
    printf '\t}\n}\n\nfunc main() { coremain.Run() }\n'
  } >main.go
  go mod edit -require="$module@v$COREDNS_VERSION"
  repeat_replaces "$source_dir/go.mod"
  go mod tidy
  new_out "$coredns_dir"
  go build -trimpath -ldflags "-s -w" -o "$out/coredns" .
  # `coredns -plugins` prints the name of each plugin it registered, one a line (v1.15.0).
  local listed
  listed=$("$out/coredns" -plugins)
  for plugin in "${coredns_plugins[@]}"; do
    grep -qxF "$plugin" <<<"$listed" || { log "coredns: -plugins does not list $plugin"; return 1; }
  done
  install_out "$coredns_dir"
  log "coredns $COREDNS_VERSION: done"
}

# metrics-server in a wrapper of its own: its go.mod@v0.8.0 requires k8s.io/* v0.33.2, which nothing else may
# raise. The version is stamped where its Makefile@v0.8.0 puts it (what --version prints).
build_metrics_server() {
  if [[ -x $ms_dir/bin/metrics-server ]]; then log "metrics-server $METRICS_SERVER_VERSION: cached"; return; fi
  log "metrics-server $METRICS_SERVER_VERSION: building"
  wrapper "$ms_dir" msbin
  local module=sigs.k8s.io/metrics-server version=v$METRICS_SERVER_VERSION gomod
  gomod=$(go mod download -json "$module@$version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
  repeat_replaces "$gomod"
  go get "$module/cmd/metrics-server@$version" >/dev/null
  new_out "$ms_dir"
  go build -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$version" \
    -o "$out/metrics-server" "$module/cmd/metrics-server"
  "$out/metrics-server" --help >/dev/null || { log "metrics-server: --help failed"; return 1; }
  [[ $("$out/metrics-server" --version) == "$version" ]] ||
    { log "metrics-server: --version does not print $version"; return 1; }
  install_out "$ms_dir"
  log "metrics-server $METRICS_SERVER_VERSION: done"
}

# The local cluster's add-ons, each in its own subshell (its cd and trap stay there).
build_cluster() { (build_kube_proxy); (build_coredns); (build_metrics_server); }

# e2e/peers/katib is a module of this repository: its binaries are rebuilt whenever its files change, which the
# digest of its sources (in the name of a stamp file beside them) tells.
build_katib() {
  local module=$here/peers/katib digest
  digest=$(cd "$module" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
  if [[ -f $katib_dir/bin/.sources-$digest ]]; then log "katib $KATIB_VERSION: cached"; return; fi
  grep -Eq "^(require )?[[:space:]]*github.com/kubeflow/katib v$KATIB_VERSION\$" "$module/go.mod" ||
    { log "e2e/peers/katib/go.mod does not require github.com/kubeflow/katib v$KATIB_VERSION (versions.env)"; return 1; }
  log "katib $KATIB_VERSION: building"
  cd "$module"
  # The new bin/ (its stamp included) moves into place at the end, the old one goes now.
  rm -rf "${katib_dir:?}/bin"
  new_out "$katib_dir"
  go build -trimpath -ldflags "-s -w" -o "$out/" ./cmd/...
  # Katib's own file metrics collector and db-manager as released, for the trials on the local node.
  go build -trimpath -ldflags "-s -w" -o "$out/file-metricscollector" \
    github.com/kubeflow/katib/cmd/metricscollector/v1beta1/file-metricscollector
  go build -trimpath -ldflags "-s -w" -o "$out/db-manager" github.com/kubeflow/katib/cmd/db-manager/v1beta1
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
      -o "$out/file-metricscollector-wait-probe" \
      github.com/kubeflow/katib/cmd/metricscollector/v1beta1/file-metricscollector)
  # Where the module's source is, for the tests that run its Python collector's code from there.
  printf '%s\n' "$source_dir" >"$out/katib-source-dir"
  touch "$out/.sources-$digest"
  chmod 755 "$out" && rm -rf "${katib_dir:?}/bin" && mv "$out" "$katib_dir/bin"
  log "katib $KATIB_VERSION: done"
}

# BusyBox from Debian's source package of the installed busybox-static (the same version, Debian's patches
# applied), configured by busybox-full.config: the collector image of the node trials with `wget -T` and
# `pkill`, which Debian's own static build lacks. Rebuilt when that file changes (its digest names a stamp).
build_busybox() {
  local config=$here/peers/busybox-full.config version digest dir work
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
  # Each step is a command of its own, in a subshell (its cd and trap stay there): bash ignores `set -e` inside
  # every command of an && list but the last, so a chain of steps would go on past a failed build.
  all) for step in etcd metacontroller kubernetes node katib busybox cluster oldest; do ("build_$step"); done ;;
  etcd|metacontroller|kubernetes|node|katib|busybox|cluster|oldest) ("build_$what") ;;
  *) echo "usage: $0 [all|etcd|metacontroller|kubernetes|node|katib|busybox|cluster|oldest]" >&2; exit 2 ;;
esac
