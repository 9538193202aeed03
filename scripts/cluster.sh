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

dir=${CLUSTER_DIR:-.eventide-cluster}
base_port=${BASE_PORT:-7801}
bin=${EVENTIDE_BIN:-target/release/eventide-node}

build() {
  if [ -z "${EVENTIDE_BIN:-}" ]; then
    cargo build --release -p eventide-node >&2
  fi
  [ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
}

addr_of() { echo "127.0.0.1:$((base_port + $1 - 1))"; }

node_count() { cat "$dir/count" 2>/dev/null || echo 0; }

start_node() {
  local i=$1 n=$2 seeds=() j
  for ((j = 1; j <= n; j++)); do
    [ "$j" = "$i" ] || seeds+=(--seed "$(addr_of "$j")")
  done
  # shellcheck disable=SC2086
  "$bin" run --data-dir "$dir/n$i" --listen "$(addr_of "$i")" --name "n$i" \
    --bootstrap-expect "$(( n < 3 ? n : 3 ))" "${seeds[@]}" ${EXTRA_ARGS:-} \
    >>"$dir/n$i.log" 2>&1 &
  echo $! >"$dir/n$i.pid"
  echo "started n$i on $(addr_of "$i") (pid $!, log $dir/n$i.log)"
}

running() { [ -f "$dir/n$1.pid" ] && kill -0 "$(cat "$dir/n$1.pid")" 2>/dev/null; }

wait_for_leader() {
  local deadline=$((SECONDS + 30)) i
  while ((SECONDS < deadline)); do
    for ((i = 1; i <= $(node_count); i++)); do
      if running "$i" && "$bin" status --node "$(addr_of "$i")" --json 2>/dev/null | grep -q '"leader": {'; then
        return 0
      fi
    done
    sleep 0.2
  done
  echo "error: no leader after 30 s; see the logs in $dir" >&2
  return 1
}

leader_index() {
  local i leader
  for ((i = 1; i <= $(node_count); i++)); do
    running "$i" || continue
    leader=$("$bin" status --node "$(addr_of "$i")" --json 2>/dev/null |
      python3 -c 'import json,sys; l=json.load(sys.stdin)["leader"]; print(l["addr"] if l else "")') || continue
    [ -n "$leader" ] || continue
    echo $(( ${leader##*:} - base_port + 1 ))
    return 0
  done
  return 1
}

case "${1:-}" in
  start)
    n=${2:-3}
    build
    mkdir -p "$dir"
    echo "$n" >"$dir/count"
    for ((i = 1; i <= n; i++)); do start_node "$i" "$n"; done
    wait_for_leader
    "$bin" status --node "$(addr_of 1)"
    ;;
  status)
    "$bin" status --node "$(addr_of "${2:-1}")"
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
      if running "$i"; then kill -TERM "$(cat "$dir/n$i.pid")"; echo "stopping n$i"; fi
    done
    deadline=$((SECONDS + 30))
    for ((i = 1; i <= $(node_count); i++)); do
      while running "$i"; do
        ((SECONDS < deadline)) || { echo "error: n$i did not stop; kill -9 it" >&2; exit 1; }
        sleep 0.1
      done
      rm -f "$dir/n$i.pid"
    done
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
