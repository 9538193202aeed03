#!/usr/bin/env bash
# A rolling upgrade on loopback, from one eventide-node binary to another: starts a
# 3-node cluster of OLD with a cluster secret (signed RPC, gossip admission) and a
# repository, then replaces one node at a time by NEW on the same data dir (SIGTERM,
# start NEW), the leader last but one. After every step it makes a commit and checks, on
# every node and with both binaries' CLI, that every commit has exactly one result and
# that all of them passed; it also runs a rerun and reads the status document with both.
# It stops everything it started on exit.
#
#   scripts/upgrade.sh OLD_BIN NEW_BIN
#   BASE_PORT=9101 scripts/upgrade.sh /tmp/old/eventide-node target/debug/eventide-node
#
# Exit status 0 when every check held; the node logs are shown when one did not.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/nodes.sh
source scripts/lib/nodes.sh

old=${1:?usage: $0 OLD_BIN NEW_BIN}
new=${2:?usage: $0 OLD_BIN NEW_BIN}
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "error: no executable eventide-node at $bin" >&2; exit 2; }
done

# Status reads of the scripts' library go through the new binary.
BIN=$new
base_port=${BASE_PORT:-7821}
work=$(mktemp -d -t eventide-upgrade-XXXXXX)
NODES_WORK=$work
NODES_GRACE=10
NODES_POLL=0.2
nodes_traps

step() { printf '\n== %s\n' "$*"; }
addr() { echo "127.0.0.1:$((base_port + $1 - 1))"; }
nodes_require_free_ports "$base_port" "$((base_port + 1))" "$((base_port + 2))"
addrs="$(nodes_addrs "$base_port" "$((base_port + 1))" "$((base_port + 2))")"

secret=$work/secret
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret"
export EVENTIDE_SECRET_FILE=$secret

repo=$work/repo
git init -q -b main "$repo"
printf '[test]\ncommand = "true"\n' >"$repo/.eventide.toml"
commits=0
commit() {
  echo "$1" >>"$repo/steps"
  git -C "$repo" add -A
  git -C "$repo" -c user.name=upgrade -c user.email=upgrade@example.invalid commit -qm "$1"
  commits=$((commits + 1))
  echo "committed $(git -C "$repo" rev-parse --short=8 HEAD): $1"
}
commit "first"

declare -A binary_of
start() {  # node, binary
  binary_of[$1]=$2
  BIN=$2 nodes_start "n$1" "n$1" "$work/n$1" "$work/n$1.log" "$(addr "$1")" "$addrs" \
    --repo "$repo" --poll-interval 200ms --secret-file "$secret"
}

# Every commit has exactly one job, and every job passed, as node $1 answers through
# binary $2's CLI (the jobs document, typed on one side and free strings on the other).
settled() {  # node, binary, expected jobs
  "$2" results --node "$(addr "$1")" --all --json 2>/dev/null | python3 -c '
import collections, json, sys
jobs = json.load(sys.stdin)
per_commit = collections.Counter(j["commit"] for j in jobs if j["trigger"] == "push")
states = collections.Counter(j["state"] for j in jobs)
ok = len(jobs) == int(sys.argv[1]) and set(per_commit.values()) <= {1} and set(states) == {"passed"}
sys.exit(0 if ok else 1)' "$3"
}

expected=0
check_everywhere() {  # what just happened
  local i bin
  for i in 1 2 3; do
    for bin in "$old" "$new"; do
      nodes_wait 60 "after $1: n$i (${binary_of[$i]##*/}) did not show $expected passed jobs through $bin" \
        settled "$i" "$bin" "$expected" || exit 1
      "$bin" status --node "$(addr "$i")" --json >"$work/status.json" || {
        echo "error: after $1: $bin status of n$i failed" >&2
        exit 1
      }
    done
  done
  echo "after $1: every node shows $expected jobs, one per commit, all passed (read with both binaries)"
}

has_leader() { [ -n "$(nodes_leader "$(addr "$1")" 2>/dev/null || true)" ]; }
all_alive() { [ "$(nodes_alive "$(addr "$1")" 2>/dev/null || true)" = 3 ]; }
leader_index() {
  local name
  name=$(nodes_leader "$(addr "$1")") || return 1
  echo "${name#n}"
}

step "3 nodes on $old"
for i in 1 2 3; do start "$i" "$old"; done
nodes_wait 30 "no leader" has_leader 1 || exit 1
expected=1
check_everywhere "start"

leader=$(leader_index 1)
order=()
for i in 1 2 3; do [ "$i" = "$leader" ] || order+=("$i"); done
# The leader goes second, so that a NEW node is among the voters that elect its successor.
order=("${order[0]}" "$leader" "${order[1]}")

for i in "${order[@]}"; do
  step "n$i: $old -> $new"
  nodes_stop 10 "n$i"
  start "$i" "$new"
  nodes_wait 30 "n$i did not rejoin" all_alive "$i" || exit 1
  nodes_wait 30 "no leader after n$i came back" has_leader "$i" || exit 1
  commit "after n$i"
  expected=$((expected + 1))
  check_everywhere "n$i on the new binary"
done

step "a rerun through the old CLI, then through the new one"
first=$(git -C "$repo" rev-list --max-parents=0 HEAD)
"$old" rerun "$first" --node "$(addr 1)" >/dev/null
expected=$((expected + 1))
"$new" rerun "$first" --node "$(addr 2)" >/dev/null
expected=$((expected + 1))
check_everywhere "two reruns"

step "done: $commits commits, $expected jobs, a rolling upgrade with nothing lost or repeated"
