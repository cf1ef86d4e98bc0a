#!/usr/bin/env bash
# fuzz.sh — runs every fuzz target in fuzz/ for SECONDS each (default 300) with cargo-fuzz on a
# nightly toolchain (installs cargo-fuzz when missing). Not part of CI: it needs nightly and
# time. A crash leaves its input under fuzz/artifacts/<target>/ and fails the script.
# Usage: scripts/fuzz.sh [SECONDS [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse_syslog parse_logfmt parse_container condition)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }
for target in "${targets[@]}"; do
  echo "fuzz.sh: $target for ${seconds}s" >&2
  (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048)
done
