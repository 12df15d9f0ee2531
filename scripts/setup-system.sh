#!/usr/bin/env bash
# Installs the system packages pyk8s needs on Debian 12. Idempotent: packages already
# present are not fetched again. Without root it reports what is missing and fails.
set -euo pipefail
# kubectl 1.32 is not a Debian package (Debian 12 ships 1.20); the machines this runs
# on carry it (DESIGN.md). Its tests drive the real binary, so its absence is an error,
# not a reason to skip them.
check_kubectl() {
  local minor
  minor=$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -1)
  if [ "$minor" != 32 ]; then
    echo "setup: kubectl 1.32 is required on PATH (found: ${minor:+1.}${minor:-none});" \
         "install it from https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl" >&2
    exit 1
  fi
}
pkgs=(python3 python3-venv python3-dev gcc make git containerd runc
      containernetworking-plugins iptables nftables iproute2 etcd-server etcd-client
      busybox-static nginx-light openssl curl ca-certificates conntrack zstd lz4)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then check_kubectl; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup: not root (or no apt-get); missing system packages: ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services on install; pyk8s runs its own containerd/etcd/nginx with
# their own configs, so stop the distribution's copies if they were just started.
for s in containerd etcd nginx; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$s" 2>/dev/null; then
    systemctl disable --now "$s" >/dev/null 2>&1 || true
  fi
done
check_kubectl
