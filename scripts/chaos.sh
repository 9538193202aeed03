#!/usr/bin/env bash
# Chaos run with real network partitions: Eventide nodes, each in its own network
# namespace, under a steady stream of commits while a seeded nemesis kills nodes (the
# leader often), restarts them and cuts the network (nftables DROP rules, links down).
# After the final heal it checks that every commit has exactly one result, that no result
# seen during the run was lost, that every replica is identical and that a leader always
# came back within 20 s; then prints a summary (kills, restarts, partitions, commits,
# results, errors, violations, seed). Exits non-zero on any violation.
#
#   scripts/chaos.sh --minutes N [--seed S] [--nodes 5]
#
# Needs root, iproute2 and nftables. Node logs of a failing run are kept under
# ${TMPDIR:-/tmp}/eventide-chaos-SEED/.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=5
seed=""
nodes=5
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9]*) echo "error: --minutes takes a whole number" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
  echo "error: chaos runs create network namespaces and firewall rules: run as root" >&2
  exit 1
fi

cargo build -p eventide-node --locked
EVENTIDE_CHAOS_SECONDS=$((minutes * 60)) EVENTIDE_CHAOS_SEED="$seed" EVENTIDE_CHAOS_NODES="$nodes" \
  cargo test -p eventide-tests --locked --test t95_chaos -- --nocapture
