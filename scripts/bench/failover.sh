#!/usr/bin/env bash
# Leader failover on loopback: Eventide next to etcd, through the same kill loop.
# Each trial kill -9s the leader of a 3-member cluster and times, from the kill:
#   - a new leader (another id) in a survivor's status,
#   - the first write committed through a survivor (Eventide: POST /api/v1/repos,
#     etcd: PUT through its JSON gateway),
#   - (Eventide) the victim shown alive:false by every survivor's gossip view,
# then restarts the victim on its own data dir and waits for a healthy cluster.
#
#   scripts/bench/failover.sh                      # 20 trials each, Eventide then etcd
#   TRIALS=5 SKIP_ETCD=1 scripts/bench/failover.sh
#
# Environment:
#   TRIALS=20          kills per cluster
#   EVENTIDE_BIN=PATH  use this eventide-node instead of building the release binary
#   ETCD_TUNED=1       also run etcd with heartbeat 50 ms / election 500 ms
#   SKIP_ETCD=1        run only Eventide (no etcd install, no etcd column)
#   EVENTIDE_HEARTBEAT, EVENTIDE_ELECTION_TIMEOUT, EVENTIDE_GOSSIP_INTERVAL are read
#   by the nodes themselves (see `eventide-node run --help`), for experiments.
#
# Installs etcd-server and etcd-client with apt-get when etcd is missing (needs root).
# All traffic stays on 127.0.0.1. Stops only the PIDs it started; removes its temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."

TRIALS="${TRIALS:-20}"
ETCD_TUNED="${ETCD_TUNED:-0}"
SKIP_ETCD="${SKIP_ETCD:-0}"
PYTHON="${PYTHON:-python3}"
PROBE="$PWD/scripts/bench/failover_probe.py"
TRIAL_DEADLINE=30   # seconds after a kill before a metric counts as timed out
HEALTH_DEADLINE=60  # seconds for a (re)started cluster to become healthy
[[ "$TRIALS" =~ ^[1-9][0-9]*$ ]] || { echo "TRIALS must be a positive integer" >&2; exit 2; }

# shellcheck source=scripts/lib/nodes.sh
source scripts/lib/nodes.sh
WORK="$(mktemp -d "${TMPDIR:-/tmp}/eventide-failover.XXXXXX")"
NODES_WORK=$WORK
NODES_GRACE=0  # members are killed with SIGKILL, as in the trials
nodes_traps

probe() { "$PYTHON" "$PROBE" "$@"; }

# `probe trial` kill -9s one of our nodes; bash would then print a "Killed" job notice
# on its own stderr. The probe's stderr goes to fd 3 (the real one), the notice nowhere.
trial_probe() { { "$PYTHON" "$PROBE" trial "$@" 2>&3; } 3>&2 2>/dev/null; }

index_of() {  # port, ports...
  local port=$1 i=1 p
  shift
  for p in "$@"; do
    [[ "$p" == "$port" ]] && { echo "$i"; return; }
    i=$((i + 1))
  done
  echo "leader port $port is none of ours ($*)" >&2
  return 1
}

# --- the binary -----------------------------------------------------------------------
nodes_binary "building the release binary (cargo build --release -p eventide-node)"
# Settings that would change what is measured if inherited from the environment.
unset EVENTIDE_CONFIG EVENTIDE_REPOS EVENTIDE_BOOTSTRAP_EXPECT EVENTIDE_VOTERS EVENTIDE_ADVERTISE

if [[ "$SKIP_ETCD" != 1 ]] && ! { command -v etcd && command -v etcdctl; } >/dev/null; then
  [[ $(id -u) -eq 0 ]] || { echo "etcd is missing and installing it needs root (or SKIP_ETCD=1)" >&2; exit 1; }
  echo "installing etcd-server and etcd-client with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends etcd-server etcd-client >&2
fi

# --- Eventide -------------------------------------------------------------------------
start_eventide() {  # index (1-3)
  nodes_start "eventide:$1" "n$1" "$WORK/eventide/n$1" "$WORK/eventide/n$1.log" \
    "127.0.0.1:${EV_PORTS[$(($1 - 1))]}" "$EV_ADDRS"
}

run_eventide() {
  local ports k i leader rc tries
  read -r -a EV_PORTS <<<"$(nodes_free_ports 3)"
  ports="$(IFS=,; echo "${EV_PORTS[*]}")"
  EV_ADDRS="$(nodes_addrs "${EV_PORTS[@]}")"
  mkdir -p "$WORK/eventide" "$WORK/repos"
  for i in 1 2 3; do start_eventide "$i"; done
  echo "eventide: 3 nodes on 127.0.0.1:{${ports}}"
  leader="$(probe wait --system eventide --ports "$ports" --deadline "$HEALTH_DEADLINE" \
    --url-dir "$WORK/repos")"
  for ((k = 1; k <= TRIALS; k++)); do
    for ((tries = 1; ; tries++)); do
      i="$(index_of "$leader" "${EV_PORTS[@]}")"
      rc=0
      trial_probe --system eventide --ports "$ports" --victim "$leader" \
        --pid "${NODE_PIDS[eventide:$i]}" --trial "$k" --label eventide \
        --deadline "$TRIAL_DEADLINE" --url-dir "$WORK/repos" --out "$WORK/eventide.jsonl" || rc=$?
      [[ $rc -eq 0 ]] && break
      # 3: leadership moved between finding the leader and the kill; look again.
      [[ $rc -eq 3 && $tries -lt 5 ]] || { echo "eventide trial $k failed" >&2; exit 1; }
      leader="$(probe wait --system eventide --ports "$ports" --deadline "$HEALTH_DEADLINE" \
        --url-dir "$WORK/repos")"
    done
    nodes_forget "eventide:$i"
    start_eventide "$i"
    leader="$(probe wait --system eventide --ports "$ports" --deadline "$HEALTH_DEADLINE" \
      --url-dir "$WORK/repos")"
  done
  nodes_stop_all 0 eventide:
}

# --- etcd -----------------------------------------------------------------------------
start_etcd() {  # index (1-3), heartbeat ms, election ms, tag
  local i=$1 dir="$WORK/$4"
  nodes_spawn "$4:$i" "$dir/m$i.log" "$(command -v etcd)" --name "m$i" --data-dir "$dir/m$i" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$((i - 1))]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$((i - 1))]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$((i - 1))]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$((i - 1))]}" \
    --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new \
    --initial-cluster-token "failover-$4" \
    --heartbeat-interval "$2" --election-timeout "$3" \
    --logger zap --log-outputs stderr
}

run_etcd() {  # heartbeat ms, election ms, tag
  local hb=$1 et=$2 tag=$3 all ports k i leader rc tries
  read -r -a all <<<"$(nodes_free_ports 6)"
  ETCD_CLIENT=("${all[@]:0:3}")
  ETCD_PEER=("${all[@]:3:3}")
  ETCD_CLUSTER="m1=http://127.0.0.1:${ETCD_PEER[0]},m2=http://127.0.0.1:${ETCD_PEER[1]},m3=http://127.0.0.1:${ETCD_PEER[2]}"
  ports="$(IFS=,; echo "${ETCD_CLIENT[*]}")"
  mkdir -p "$WORK/$tag"
  for i in 1 2 3; do start_etcd "$i" "$hb" "$et" "$tag"; done
  echo "$tag: 3 members, heartbeat ${hb} ms, election ${et} ms, clients 127.0.0.1:{${ports}}"
  leader="$(probe wait --system etcd --ports "$ports" --deadline "$HEALTH_DEADLINE")"
  for ((k = 1; k <= TRIALS; k++)); do
    for ((tries = 1; ; tries++)); do
      i="$(index_of "$leader" "${ETCD_CLIENT[@]}")"
      rc=0
      trial_probe --system etcd --ports "$ports" --victim "$leader" --pid "${NODE_PIDS[$tag:$i]}" \
        --trial "$k" --label "$tag" --deadline "$TRIAL_DEADLINE" --out "$WORK/$tag.jsonl" || rc=$?
      [[ $rc -eq 0 ]] && break
      [[ $rc -eq 3 && $tries -lt 5 ]] || { echo "$tag trial $k failed" >&2; exit 1; }
      leader="$(probe wait --system etcd --ports "$ports" --deadline "$HEALTH_DEADLINE")"
    done
    nodes_forget "$tag:$i"
    start_etcd "$i" "$hb" "$et" "$tag"
    leader="$(probe wait --system etcd --ports "$ports" --deadline "$HEALTH_DEADLINE")"
  done
  nodes_stop_all 0 "$tag:"
}

# --- run ------------------------------------------------------------------------------
"$PYTHON" scripts/bench/benchlib.py machine
echo "eventide: $("$BIN" --version) ($BIN); heartbeat ${EVENTIDE_HEARTBEAT:-default}, election timeout ${EVENTIDE_ELECTION_TIMEOUT:-default}, gossip interval ${EVENTIDE_GOSSIP_INTERVAL:-default}"
[[ "$SKIP_ETCD" == 1 ]] || echo "etcd: $(etcd --version | head -n 1), $(etcdctl version | head -n 1)"
echo "each trial: kill -9 the leader; poll every survivor's status and send a write every 10 ms (alternating survivors) until all is seen, at most ${TRIAL_DEADLINE} s; restart the victim on its data dir"
echo

run_eventide
report=(--eventide "$WORK/eventide.jsonl")
if [[ "$SKIP_ETCD" != 1 ]]; then
  run_etcd 100 1000 etcd
  report+=(--etcd "etcd 100/1000=$WORK/etcd.jsonl")
  if [[ "$ETCD_TUNED" == 1 ]]; then
    run_etcd 50 500 etcd-tuned
    report+=(--etcd "etcd 50/500=$WORK/etcd-tuned.jsonl")
  fi
fi

echo
probe report "${report[@]}"
