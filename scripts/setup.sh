#!/usr/bin/env bash
# Installs what Sampan needs on a fresh Debian bookworm machine (as root), then builds it.
set -euo pipefail
cd "$(dirname "$0")/.."

# runtime parts: runc, conmon, busybox-static (the built-in base image), tini and dumb-init (--init, --rich),
# attr (overlay whiteouts), btrfs-progs and e2fsprogs (disk quota: btrfs qgroups or ext4 images),
# zstd (zstd-compressed layers); containernetworking-plugins + iptables (bridge networks, published ports); etcd-server (the cluster's state);
# test peers: the docker CLI's daemon (dockerd), podman, containerd (ctr), skopeo, umoci, the Docker SDK for Python (python3-docker) and Compose v1 on it (docker-compose), Distribution (docker-registry) with
# apache2-utils for its htpasswd files; dropbear-bin + openssh-client (SSH into a rich container); util-linux for `script` (pty tests);
# iperf3 and jq (bench/cluster-net/run.sh); chromium (the dashboard's browser tests, driven headless by playwright-core)
PKGS=(runc conmon busybox-static tini dumb-init btrfs-progs e2fsprogs attr zstd util-linux procps iproute2 iptables openssl lxcfs containernetworking-plugins golang-github-containers-common etcd-server)
if [ "${SAMPAN_SETUP_PEERS:-1}" = 1 ]; then PKGS+=(docker.io podman containerd skopeo umoci curl python3 python3-docker docker-compose docker-registry apache2-utils dropbear-bin openssh-client iperf3 jq chromium); fi
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm ci` refuses this lock file: node-unix-socket lists optional builds for other platforms that were never
# published, so the lock cannot hold them. `npm install` installs exactly the locked versions all the same.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build
