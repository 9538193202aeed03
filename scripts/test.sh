#!/usr/bin/env bash
# Runs Eventide's whole test suite: unit tests, property tests, the openraft storage
# suite, the store crash test, in-process Raft clusters, the fuzz regressions and the
# end-to-end tests that start real eventide-node processes (the dashboard's browser
# test and the bounded chaos run with network partitions among them).
#
#   scripts/test.sh                 # everything (installs what it needs first)
#   scripts/test.sh -p eventide-consensus
#
# The chaos test needs root (network namespaces); run the suite as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# The end-to-end tests start the eventide-node binary itself; nextest builds only test
# targets, so build the binary first.
cargo build -p eventide-node --locked
cargo nextest run --workspace --locked "$@"
