#!/usr/bin/env bash
# Runs Eventide's whole test suite: unit tests, property tests, the openraft storage
# suite, the store crash test, in-process Raft clusters and the end-to-end tests that
# start real eventide-node processes on loopback.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p eventide-consensus
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (the test runner) from crates.io" >&2
  cargo install cargo-nextest --locked
fi

# The end-to-end tests start the eventide-node binary itself; nextest builds only test
# targets, so build the binary first.
cargo build -p eventide-node --locked
cargo nextest run --workspace --locked "$@"
