#!/usr/bin/env bash
# Installs the Debian packages dockyard and its tests need; idempotent.
# Services shipped by these packages (docker.io's dockerd, containerd's unit)
# are never started by the install: a policy-rc.d denies them for its duration.
set -euo pipefail

packages=(
  containerd runc containernetworking-plugins
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  golang-github-gogo-googleapis-dev
  busybox-static docker.io docker-registry tini zstd iptables
  python3-venv docker-compose iproute2 procps openssl util-linux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages (${missing[*]}); run as root" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
had_policy=0
[ -e "$policy" ] && had_policy=1
if [ $had_policy -eq 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
