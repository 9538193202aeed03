#!/usr/bin/env bash
# Raft throughput and commit latency of the replicated core: 3 nodes in one process,
# real sled stores, HTTP over loopback, Finish-sized commands, 1 and 64 proposers.
#
#   scripts/bench/raft.sh                      # 20,000 commands per configuration
#   BENCH_COMMANDS=5000 BENCH_PROPOSERS=1,8,64 scripts/bench/raft.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench -p eventide-consensus --bench raft "$@"
