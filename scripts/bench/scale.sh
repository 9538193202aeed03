#!/usr/bin/env bash
# Many nodes on one machine, started the way a user would: the same binary, every node
# seeded with the first three, `--bootstrap-expect 3`. Prints the machine, the file
# system the nodes' data dirs are on (under TMPDIR: its type, and for ext4 whether it has
# a journal; `discard` if mounted so), and: the time
# from the last start until every node sees every node alive in gossip, and until every
# node answers with a leader and its role (3 voters and 2 standbys are servers, the rest
# clients); RSS per node
# (min / median / max); the idle cluster's CPU over IDLE_SECONDS, as % of one core, and
# per node and by role (servers, clients). Then, through a client: 1,000 commits of a `command = "true"` repository
# through every runner (jobs/s), LEADER_KILLS kill -9 of the leader (each restarted on its
# data dir afterwards, and caught up before the next kill) -> a new leader, and kill -9
# of CLIENT_KILLS clients running jobs -> their jobs running elsewhere. With GOSSIP_ONLY=1
# the nodes never form a cluster (`--bootstrap-expect` above N), which shows what gossip
# alone costs; WORK=0 skips the busy part.
#
#   scripts/bench/scale.sh --nodes 30
#   GOSSIP_ONLY=1 scripts/bench/scale.sh --nodes 60
#
# Environment:
#   IDLE_SECONDS=30    how long the idle CPU is measured
#   DEADLINE=180       seconds to wait for the cluster to settle
#   EVENTIDE_BIN=PATH  use this eventide-node instead of building the release binary
#   KEEP_TMP=1         keep the temp dir (node logs)
#   WORK=1             the busy part (0: idle figures only)
#   LEADER_KILLS=20, CLIENT_KILLS=10
#   NODE_FLAGS="..."   extra `run` flags for every node, e.g. "--gossip-interval 1s"
#   SHARED_MIRRORS=1   every node's runner keeps its mirrors in one directory
#                      (`--runner-mirrors`), as nodes sharing a machine may: one fetch
#                      of new commits for the machine instead of one per node
#   PROFILE_BURST=FILE `perf record -a -g` of the whole machine during the 1,000 commits
#
# Each node uses two loopback ports (TCP and UDP on one number) and about 15 MB. Run it
# alone: on a small machine anything else running skews the CPU figures. Stops only the
# PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/nodes.sh

count=30
while (($#)); do
  case "$1" in
    --nodes) count=${2:?--nodes N}; shift 2 ;;
    --nodes=*) count=${1#--nodes=}; shift ;;
    *) echo "usage: $0 [--nodes N]" >&2; exit 2 ;;
  esac
done
[[ "$count" =~ ^[0-9]+$ && "$count" -ge 3 ]] || { echo "error: --nodes N needs N >= 3" >&2; exit 2; }
expect=3
[[ "${GOSSIP_ONLY:-0}" == 1 ]] && expect=$((count + 1))

nodes_binary "building the release binary (a few minutes the first time)"
NODES_WORK="$(mktemp -d -t eventide-bench-scale-XXXXXX)"
NODES_KEEP="${KEEP_TMP:-0}"
NODES_GRACE=5
nodes_traps
ulimit -n 65536 2>/dev/null || true
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Commits made here ignore the user's git configuration.
printf '[user]\n\tname = bench\n\temail = bench@localhost\n[init]\n\tdefaultBranch = main\n' \
  >"$NODES_WORK/gitconfig"
export GIT_CONFIG_GLOBAL="$NODES_WORK/gitconfig" GIT_CONFIG_NOSYSTEM=1
repo=()
if [[ "${WORK:-1}" == 1 && $expect -le $count ]]; then
  mkdir -p "$NODES_WORK/repo"
  printf '[test]\ncommand = "true"\n' >"$NODES_WORK/repo/.eventide.toml"
  git -C "$NODES_WORK/repo" init -q
  git -C "$NODES_WORK/repo" add -A
  git -C "$NODES_WORK/repo" commit -q -m "a job that passes"
  repo=(--repo "$NODES_WORK/repo" --leader-kills "${LEADER_KILLS:-20}"
    --client-kills "${CLIENT_KILLS:-10}")
fi

read -r -a ports <<<"$(nodes_free_ports "$count" | tr '\n' ' ')"
seeds=()
for port in "${ports[@]:0:3}"; do seeds+=(--seed "127.0.0.1:$port"); done
pids=()
for ((i = 0; i < count; i++)); do
  addr="127.0.0.1:${ports[$i]}"
  mkdir -p "$NODES_WORK/n$i"
  own_seeds=()
  shared=()
  [[ "${SHARED_MIRRORS:-0}" == 1 ]] && shared=(--runner-mirrors "$NODES_WORK/mirrors")
  for ((k = 0; k < ${#seeds[@]}; k += 2)); do
    [[ "${seeds[$((k + 1))]}" == "$addr" ]] || own_seeds+=(--seed "${seeds[$((k + 1))]}")
  done
  nodes_spawn "n$i" "$NODES_WORK/n$i/node.log" "$BIN" run --data-dir "$NODES_WORK/n$i/data" \
    --listen "$addr" --name "n$i" "${own_seeds[@]}" --bootstrap-expect "$expect" \
    --sandbox none "${shared[@]}" ${NODE_FLAGS:-} # split into words on purpose
  pids+=("${NODE_PIDS[n$i]}")
done
started=$(date +%s.%N)

python3 scripts/bench/scale_probe.py --started "$started" \
  --ports "$(IFS=,; echo "${ports[*]}")" --pids "$(IFS=,; echo "${pids[*]}")" \
  --idle "${IDLE_SECONDS:-30}" --deadline "${DEADLINE:-180}" \
  --mode "$([[ $expect -gt $count ]] && echo gossip-only || echo cluster)" --servers 5 \
  --data "$NODES_WORK" \
  "${repo[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
