#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh Debian 12 machine: installs the build and service
# dependencies and the packaging checkers (scripts/packaging-tools.sh), starts the real test
# broker (scripts/services.sh), checks formatting and lints, runs every test, builds the Debian
# package and checks that it installs, validates and purges (scripts/deb.sh check), and stops the
# services it started. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
set -a
eval "$(scripts/packaging-tools.sh install)"
eval "$(scripts/services.sh start)"
set +a
trap 'scripts/services.sh stop' EXIT

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# The 50,000 lines/s rotation tests and the 60 s broker outage at 20,000 lines/s need the
# machine's cores to themselves: they run first, one at a time, then everything else.
heavy=(at_50k_lines_per_second a_60_second_outage)
cargo test --test integration --locked "$@" -- "${heavy[@]}" --test-threads 1
cargo test --lib --bins --tests --locked "$@" -- "${heavy[@]/#/--skip=}"
cargo test --bench file_path --bench pipeline --locked "$@"
scripts/deb.sh check
