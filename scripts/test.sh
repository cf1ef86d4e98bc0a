#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh Debian 12 machine: installs the build and service
# dependencies, starts the real test broker (scripts/services.sh), checks formatting and lints,
# runs every test, and stops the services it started. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
set -a
eval "$(scripts/services.sh start)"
set +a
trap 'scripts/services.sh stop' EXIT

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked "$@"
