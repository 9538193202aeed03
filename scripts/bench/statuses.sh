#!/usr/bin/env bash
# What a commit status costs the leader: a 3-node cluster watching two repositories on a
# real https git server (nginx + git http-backend, a private CA, a token), one with a
# forge (the test forge's GitHub API, answering 201) and one without. Each run reruns
# BENCH_JOBS jobs of `command = "true"` on each and measures, per job, the leader's CPU
# time (user + system, from /proc) and the Raft entries applied; the difference between
# the two rows is what the statuses cost (three a job: queued, running, final, each one
# HTTP post and one StatusDelivered entry; the outbox entries ride in the job's own
# entries). Prints the machine and min / median / max over BENCH_RUNS runs.
#
#   scripts/bench/statuses.sh
#   BENCH_JOBS=500 BENCH_RUNS=5 scripts/bench/statuses.sh
#
# Environment:
#   BENCH_JOBS=200     reruns per run and repository (a repository queues at most 500)
#   BENCH_RUNS=3       runs of each
#   EVENTIDE_BIN=PATH  use this eventide-node instead of building the release binary
#
# The cluster is the forge tests' (tests/src/forge_world.rs); the measuring program is
# tests/examples/status_cost.rs, run against the release binary. Needs nginx and fcgiwrap
# (scripts/setup.sh). Run it alone: other load on a small machine skews CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/nodes.sh

nodes_binary "building the release binary (a few minutes the first time)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cargo build -p eventide-tests --example status_cost >&2
BENCH_JOBS="${BENCH_JOBS:-200}" BENCH_RUNS="${BENCH_RUNS:-3}" EVENTIDE_NODE_BIN="$BIN" \
  "${CARGO_TARGET_DIR:-$PWD/target}/debug/examples/status_cost"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
