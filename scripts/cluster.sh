#!/usr/bin/env bash
# Start and stop a local Eventide cluster of N nodes on 127.0.0.1.
#
#   scripts/cluster.sh start [N]      # N nodes (default 3) on ports BASE_PORT.. (default 7801)
#   scripts/cluster.sh status         # eventide-node status against the first node
#   scripts/cluster.sh kill-leader    # kill -9 the current leader
#   scripts/cluster.sh restart I      # restart node I (1-based) with its data dir
#   scripts/cluster.sh stop           # SIGTERM every node this script started
#
# Environment: CLUSTER_DIR (default .eventide-cluster; data dirs, logs and pids),
# BASE_PORT (7801), EVENTIDE_BIN (default: target/release/eventide-node, built if
# missing), EXTRA_ARGS (more flags for every `run`, e.g. "--repo /path/to/repo").
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/nodes.sh
source scripts/lib/nodes.sh

dir=${CLUSTER_DIR:-.eventide-cluster}
base_port=${BASE_PORT:-7801}
BIN=${EVENTIDE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/eventide-node}
NODES_POLL=0.2

addr_of() { echo "127.0.0.1:$((base_port + $1 - 1))"; }

node_count() { cat "$dir/count" 2>/dev/null || echo 0; }

addrs_of() {  # node count: every node's address, comma-separated
  local j ports=()
  for ((j = 1; j <= $1; j++)); do ports+=("$((base_port + j - 1))"); done
  nodes_addrs "${ports[@]}"
}

start_node() {
  local i=$1 n=$2 extra=()
  read -r -a extra <<<"${EXTRA_ARGS:-}"
  nodes_start "n$i" "n$i" "$dir/n$i" "$dir/n$i.log" "$(addr_of "$i")" "$(addrs_of "$n")" \
    --bootstrap-expect "$(( n < 3 ? n : 3 ))" "${extra[@]}"
  echo "${NODE_PIDS[n$i]}" >"$dir/n$i.pid"
  echo "started n$i on $(addr_of "$i") (pid ${NODE_PIDS[n$i]}, log $dir/n$i.log)"
}

running() { [ -f "$dir/n$1.pid" ] && kill -0 "$(cat "$dir/n$1.pid")" 2>/dev/null; }

some_leader() {
  local i
  for ((i = 1; i <= $(node_count); i++)); do
    running "$i" && [ -n "$(nodes_leader "$(addr_of "$i")")" ] && return 0
  done
  return 1
}

leader_index() {
  local i leader
  for ((i = 1; i <= $(node_count); i++)); do
    running "$i" || continue
    leader=$(nodes_leader "$(addr_of "$i")" addr) || continue
    [ -n "$leader" ] || continue
    echo $(( ${leader##*:} - base_port + 1 ))
    return 0
  done
  return 1
}

case "${1:-}" in
  start)
    n=${2:-3}
    nodes_binary ""
    mkdir -p "$dir"
    echo "$n" >"$dir/count"
    for ((i = 1; i <= n; i++)); do start_node "$i" "$n"; done
    nodes_wait 30 "no leader after 30 s; see the logs in $dir" some_leader
    "$BIN" status --node "$(addr_of 1)"
    ;;
  status)
    "$BIN" status --node "$(addr_of "${2:-1}")"
    ;;
  kill-leader)
    i=$(leader_index) || { echo "error: no leader" >&2; exit 1; }
    kill -9 "$(cat "$dir/n$i.pid")"
    echo "killed n$i (the leader)"
    ;;
  restart)
    i=${2:?usage: $0 restart I}
    running "$i" && { echo "error: n$i is running" >&2; exit 1; }
    start_node "$i" "$(node_count)"
    ;;
  stop)
    for ((i = 1; i <= $(node_count); i++)); do
      if running "$i"; then NODE_PIDS[n$i]=$(cat "$dir/n$i.pid"); echo "stopping n$i"; fi
    done
    nodes_stop_all 30 || { echo "error: a node did not stop within 30 s; sent it SIGKILL" >&2; exit 1; }
    for ((i = 1; i <= $(node_count); i++)); do rm -f "$dir/n$i.pid"; done
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
