#!/usr/bin/env bash
# deps.sh — install the Debian packages logship needs to build and test, on a fresh Debian 12.
# Idempotent: runs apt-get only when something is missing. Needs root (or sudo) for that.
# Extra package names as arguments are installed too (benches/vs_kcat.sh asks for kcat).
set -euo pipefail

packages=(build-essential pkg-config libssl-dev zlib1g-dev python3 python3-venv curl systemd systemd-journal-remote nginx openssl "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo not found; install Rust with rustup" >&2; exit 1; }
