#!/usr/bin/env bash
# Installs the Debian packages the local node (e2e/cluster/node.py) and its Katib trials run on: containerd and runc,
# the CNI plugins, a static BusyBox for the images, PostgreSQL for Katib's database, iptables and nftables (the
# kubelet's chains; e2e/cluster/netfilter.py reads and puts back the host's tables), and what building the full
# BusyBox from Debian's source takes (e2e/build-control-plane.sh busybox: gcc and a static libc, make,
# dpkg-source with bzip2 and xz). Only what is missing; apt waits for another installer's lock instead of failing.
set -euo pipefail
packages=(containerd runc containernetworking-plugins busybox-static postgresql iproute2 util-linux
  iptables nftables gcc libc6-dev make dpkg-dev bzip2 xz-utils debian-archive-keyring)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} == 0)); then echo "node packages: installed"; exit 0; fi
if ((EUID != 0)); then echo "node packages: run as root to install ${missing[*]}" >&2; exit 1; fi
echo "node packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
