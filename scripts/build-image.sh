#!/usr/bin/env bash
# Builds the project's image from the unmodified Dockerfile without a Docker daemon or a registry:
# buildah, podman and runc from Debian, and a stand-in for the base image python:3.11-slim-bookworm made
# with debootstrap (cached outside the repository, imported under that tag unless an image of that name
# is already present). Prints the image's layers and the size of its Python environment.
#
#   bash scripts/build-image.sh [IMAGE]      (default: localhost/kubeflow-extension:dev)
#   bash scripts/build-image.sh --base-only  (only the tools and the base image, e.g. ahead of a build)
#
# Where the package index is reached through a TLS proxy that the host trusts, the build sees the host's
# CA bundle and a pip.conf naming it through read-only bind mounts, which no layer records.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
image=${1:-localhost/kubeflow-extension:dev}
base=python:3.11-slim-bookworm
cache=${KUBEFLOW_EXTENSION_CACHE:-$HOME/.cache/kubeflow-extension}/base-image-${base//:/-}
# crun fails on cgroup v1 hosts (setrlimit); podman's default rlimits are refused in some containers.
runtime=(--runtime runc)
limits=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

install_tools() {
  local missing=() tool
  for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) && return
  log "installing ${missing[*]} from Debian"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

# The first bookworm mirror apt uses here (deb822 or one-line sources), and apt's HTTP proxy, if any.
debian_mirror() {
  local found
  found=$(awk '
    /^[[:space:]]*$/ { if (uri != "" && suite) { print uri; exit } uri = ""; suite = 0; next }
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
    END { if (uri != "" && suite) print uri }
  ' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  if [[ -z $found && -f /etc/apt/sources.list ]]; then
    found=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${found:-http://deb.debian.org/debian}"
}

# A root filesystem close to the official image: Debian's Python 3.11 (with pip, setuptools and wheel
# installed, as the official image has them) and the /usr/local/bin/python3 and python it provides.
make_base_tarball() {
  local mirror proxy='' work=$cache/rootfs.tmp
  mirror=$(debian_mirror)
  eval "$(apt-config shell proxy Acquire::http::Proxy)"
  log "debootstrap bookworm from $mirror${proxy:+ via $proxy} (a few minutes, once)"
  rm -rf "$work" && mkdir -p "$work"
  http_proxy=${proxy:-${http_proxy:-}} debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$work" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || { tail -n 20 "$cache/debootstrap.log" >&2; return 1; }
  ln -sf /usr/bin/python3 "$work/usr/local/bin/python3"
  ln -sf python3 "$work/usr/local/bin/python"
  rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin "$work"/var/cache/apt/archives/*.deb
  rm -f "$work/etc/hostname"
  : >"$work/etc/resolv.conf"
  tar --numeric-owner -C "$work" -cf "$cache/rootfs.tar.tmp" .
  mv "$cache/rootfs.tar.tmp" "$cache/rootfs.tar"
  rm -rf "$work"
}

ensure_base() {
  if podman image exists "$base"; then
    log "base $base: present"
    return
  fi
  mkdir -p "$cache"
  [[ -f $cache/rootfs.tar ]] || make_base_tarball
  log "base $base: importing the stand-in from $cache/rootfs.tar (for tests; pull the real one to publish)"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$cache/rootfs.tar" "$base" >/dev/null
}

build() {
  local trust
  trust=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: the directory is local to this function
  trap "rm -rf '$trust'" RETURN
  cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$trust/ca-certificates.crt"
  mkdir -p "$trust/home/.config/pip"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$trust/home/.config/pip/pip.conf"
  chmod -R a+rX "$trust"
  log "building $image"
  # Mounted only over paths every base has (a mount point that is not there would be created, and left
  # behind as an empty file by the final stage's RUN): the CA bundle, and root's home for pip's config.
  buildah bud --pull=never --layers "${runtime[@]}" "${limits[@]}" --network host \
    --volume "$trust/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro" \
    --volume "$trust/home:/root:ro" \
    --tag "$image" --file Dockerfile . >&2
}

report() {
  echo "Layers of $image (newest first):"
  podman history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | cut -c1-160
  echo "Image size: $(podman image inspect --format '{{.Size}}' "$image") bytes"
  echo "Largest parts of its Python environment:"
  podman run --rm "${runtime[@]}" "${limits[@]}" --network none --entrypoint sh "$image" -c \
    'cd /opt/kubeflow-extension/lib/python3.11/site-packages && du -sm -- * | sort -rn | head -n 12;
     du -sm kubernetes/client/api kubernetes/client/models; du -sm /opt/kubeflow-extension'
}

install_tools
ensure_base
if [[ $image == --base-only ]]; then exit 0; fi
build
report
