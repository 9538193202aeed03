# shellcheck shell=bash
# Local eventide-node processes for the scripts that run clusters (cluster.sh, demo.sh,
# bench/failover.sh, bench/pipeline.sh); sourced from the repository root. Every process
# started here is recorded in NODE_PIDS under a key the caller picks, and only those
# PIDs are ever signalled.
#
#   nodes_binary NOTE              sets BIN: $EVENTIDE_BIN, or the release binary built now
#                                  (NOTE, when not empty, goes to stderr before the build)
#   nodes_free_ports N             N loopback ports free for both TCP and UDP
#   nodes_require_free_ports P...  fails when one of the loopback ports is taken
#   nodes_addrs PORT...            127.0.0.1:PORT for each, comma-separated (nodes_start's ADDRS)
#   nodes_spawn KEY LOG CMD...     starts CMD in the background, output appended to LOG
#   nodes_start KEY NAME DIR LOG ADDR ADDRS [FLAG...]
#                                  `eventide-node run` on ADDR, seeded with the other ADDRS
#   nodes_wait SECONDS MESSAGE CMD...
#                                  runs CMD every NODES_POLL s until it succeeds
#   nodes_leader ADDR [FIELD]      the leader's name (or addr, id) in ADDR's status
#   nodes_alive ADDR               how many nodes ADDR's status shows alive
#   nodes_forget KEY               reaps a recorded process that was killed elsewhere
#   nodes_stop GRACE KEY...        SIGTERM, SIGKILL after GRACE s (0: SIGKILL at once)
#   nodes_stop_all GRACE [PREFIX]  nodes_stop for every recorded key (with PREFIX)
#   nodes_traps                    on exit: stop everything, show logs, remove NODES_WORK

NODES_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
declare -gA NODE_PIDS=()  # key -> PID started here and not reaped yet
NODES_POLL=${NODES_POLL:-0.1}  # seconds between two looks of nodes_wait
NODES_WORK=""                  # a temp dir removed on exit
NODES_KEEP=0                   # 1: keep NODES_WORK on exit and say where it is
NODES_GRACE=10                 # seconds from SIGTERM to SIGKILL on exit
NODES_LOGS=()                  # logs besides NODES_WORK/*/*.log to show when the script fails

nodes_binary() {
  if [[ -n "${EVENTIDE_BIN:-}" ]]; then
    BIN="$EVENTIDE_BIN"
  else
    [[ -z "${1:-}" ]] || echo "$1" >&2
    cargo build --release -p eventide-node >&2
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/eventide-node"
  fi
  [[ -x "$BIN" ]] || { echo "error: no executable eventide-node at $BIN" >&2; exit 1; }
}

nodes_free_ports() {
  "${PYTHON:-python3}" "$NODES_LIB_DIR/../bench/benchlib.py" ports "$1"
}

nodes_require_free_ports() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "error: port $port is in use; set BASE_PORT" >&2
      exit 1
    fi
  done
}

nodes_addrs() {
  local port list=()
  for port in "$@"; do list+=("127.0.0.1:$port"); done
  (IFS=,; echo "${list[*]}")
}

nodes_spawn() {
  local key=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 &
  NODE_PIDS[$key]=$!
}

nodes_start() {
  local key=$1 name=$2 dir=$3 log=$4 addr=$5 all other seeds=()
  IFS=, read -r -a all <<<"$6"
  shift 6
  for other in "${all[@]}"; do
    [[ "$other" == "$addr" ]] || seeds+=(--seed "$other")
  done
  nodes_spawn "$key" "$log" "$BIN" run --data-dir "$dir" --listen "$addr" --name "$name" \
    "${seeds[@]}" "$@"
}

# An empty MESSAGE gives up quietly; either way the status is 1 after SECONDS.
nodes_wait() {
  local deadline=$((SECONDS + $1)) message=$2
  shift 2
  until "$@"; do
    if ((SECONDS >= deadline)); then
      [[ -z "$message" ]] || echo "error: $message" >&2
      return 1
    fi
    sleep "$NODES_POLL"
  done
}

nodes_leader() {
  "$BIN" status --node "$1" --json 2>/dev/null | "${PYTHON:-python3}" -c '
import json, sys
leader = json.load(sys.stdin)["leader"]
print(leader[sys.argv[1]] if leader else "")' "${2:-name}" 2>/dev/null
}

nodes_alive() {
  "$BIN" status --node "$1" --json 2>/dev/null | "${PYTHON:-python3}" -c '
import json, sys
print(sum(node["alive"] for node in json.load(sys.stdin)["nodes"]))' 2>/dev/null
}

nodes_forget() {
  wait "${NODE_PIDS[$1]}" 2>/dev/null || true
  unset 'NODE_PIDS[$1]'
}

# Status 1 when a process had to be sent SIGKILL after its grace.
nodes_stop() {
  local grace=$1 key pid deadline status=0
  shift
  for key in "$@"; do
    pid=${NODE_PIDS[$key]:-}
    [[ -n "$pid" ]] || continue
    if ((grace == 0)); then
      kill -KILL "$pid" 2>/dev/null || true
    else
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + grace))
  for key in "$@"; do
    pid=${NODE_PIDS[$key]:-}
    [[ -n "$pid" ]] || continue
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      ((grace == 0)) || status=1
    fi
    nodes_forget "$key"
  done
  return "$status"
}

nodes_stop_all() {
  local key keys=()
  for key in "${!NODE_PIDS[@]}"; do
    [[ "$key" == "${2:-}"* ]] && keys+=("$key")
  done
  nodes_stop "$1" "${keys[@]}"
}

nodes_on_exit() {
  local status=$? log shown=0 more=0
  nodes_stop_all "$NODES_GRACE" || true
  if [[ $status -ne 0 && -n "$NODES_WORK" ]]; then
    # A few logs only: a benchmark of hundreds of nodes would bury the error.
    for log in "$NODES_WORK"/*/*.log "${NODES_LOGS[@]}"; do
      [[ -f "$log" ]] || continue
      if ((shown >= 8)); then
        more=$((more + 1))
        continue
      fi
      shown=$((shown + 1))
      echo "--- last lines of ${log#"$NODES_WORK"/}" >&2
      tail -n 15 "$log" >&2
    done
    ((more == 0)) || echo "--- $more more logs not shown" >&2
  fi
  if [[ -n "$NODES_WORK" ]]; then
    if [[ "$NODES_KEEP" == 1 ]]; then
      echo "kept $NODES_WORK" >&2
    else
      rm -rf "$NODES_WORK"
    fi
  fi
}

nodes_traps() {
  trap nodes_on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
