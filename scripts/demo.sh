#!/usr/bin/env bash
# A local tour of Eventide: builds the release binary, creates an example repository
# with Python unittest tests, starts a 3-node cluster on loopback with a runner on every
# node, makes commits (one of them breaks a test) and shows their results as they land,
# kills the leader with kill -9, shows the new leader and that testing goes on, prints
# the results from every node, and stops everything it started on exit (Ctrl-C too).
#
#   scripts/demo.sh                 # ports 7801-7803
#   BASE_PORT=9001 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

base_port=${BASE_PORT:-7801}
work=$(mktemp -d -t eventide-demo-XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building eventide-node (release)"
cargo build --release -p eventide-node
bin=target/release/eventide-node

for i in 1 2 3; do
  port=$((base_port + i - 1))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port is in use; set BASE_PORT" >&2
    exit 1
  fi
done
addr() { echo "127.0.0.1:$((base_port + $1 - 1))"; }

step "creating an example repository with Python unittest tests"
repo=$work/example
mkdir -p "$repo/tests"
cat >"$repo/calc.py" <<'PY'
def add(a, b):
    return a + b
PY
cat >"$repo/tests/test_calc.py" <<'PY'
import unittest
import calc

class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(calc.add(2, 3), 5)
PY
commit() {
  git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid add -A
  git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -qm "$1"
  echo "committed $(git -C "$repo" rev-parse --short=8 HEAD): $1"
}
git -C "$repo" init -q -b main
commit "calc with a test"
echo "repository: $repo"

start() {
  local i=$1 seeds=() j
  for j in 1 2 3; do [ "$j" = "$i" ] || seeds+=(--seed "$(addr "$j")"); done
  "$bin" run --data-dir "$work/n$i" --listen "$(addr "$i")" --name "n$i" \
    --repo "$repo" "${seeds[@]}" >>"$work/n$i.log" 2>&1 &
  pids[$i]=$!
  disown "$!"
}

leader_of() {
  "$bin" status --node "$(addr "$1")" --json 2>/dev/null |
    python3 -c 'import json,sys; l=json.load(sys.stdin)["leader"]; print(l["name"] if l else "")' 2>/dev/null
}

alive_seen_by() {
  "$bin" status --node "$(addr "$1")" --json 2>/dev/null |
    python3 -c 'import json,sys; print(sum(n["alive"] for n in json.load(sys.stdin)["nodes"]))' 2>/dev/null
}

wait_leader() {
  local node=$1 not=${2:-} deadline=$((SECONDS + 30)) leader
  while ((SECONDS < deadline)); do
    leader=$(leader_of "$node" || true)
    if [ -n "$leader" ] && [ "$leader" != "$not" ]; then echo "$leader"; return 0; fi
    sleep 0.05
  done
  echo "error: no leader after 30 s; logs are in $work" >&2
  return 1
}

step "starting 3 nodes: $(addr 1) $(addr 2) $(addr 3)"
for i in 1 2 3; do start "$i"; done
leader=$(wait_leader 1)
echo "leader elected: $leader"
echo "dashboard: http://$(addr 1)/ (any node serves it; metrics at /metrics)"
"$bin" status --node "$(addr 1)"

step "watched repositories (asked of n2)"
deadline=$((SECONDS + 15))
until "$bin" repo list --node "$(addr 2)" | grep -q "$repo"; do
  ((SECONDS < deadline)) || { echo "error: repository not registered" >&2; exit 1; }
  sleep 0.1
done
"$bin" repo list --node "$(addr 2)"

# Waits until node $1 lists $2 jobs, all final, then prints them.
results_when_done() {
  local node=$1 count=$2 deadline=$((SECONDS + 60))
  until "$bin" results --node "$(addr "$node")" --json --limit 1000 2>/dev/null | python3 -c '
import json, sys
jobs = json.load(sys.stdin)
done = [j for j in jobs if j["state"] not in ("queued", "running")]
sys.exit(0 if len(jobs) >= int(sys.argv[1]) and len(done) == len(jobs) else 1)' "$count"; do
    ((SECONDS < deadline)) || { echo "error: $count results did not arrive; logs are in $work" >&2; exit 1; }
    sleep 0.1
  done
  "$bin" results --node "$(addr "$node")"
}

step "the first commit is tested by some runner"
results_when_done 2 1

step "installing a post-commit hook so that commits are tested at once"
"$bin" hook install "$repo" --node "$(addr 3)"

step "a commit that breaks a test, then one that fixes it"
sed -i 's/return a + b/return a - b/' "$repo/calc.py"
commit "break add"
sed -i 's/return a - b/return a + b/' "$repo/calc.py"
commit "fix add"
results_when_done 3 3
failed=$("$bin" results --node "$(addr 1)" --state failed --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
step "the log of the failed job $failed (served through n1, wherever it ran)"
"$bin" log "$failed" --node "$(addr 1)" | tail -n 12

victim=${leader#n}
survivor=$((victim % 3 + 1))
step "kill -9 the leader ($leader)"
started=$(date +%s%N)
kill -9 "${pids[$victim]}"
new_leader=$(wait_leader "$survivor" "$leader")
elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
echo "new leader: $new_leader, seen by n$survivor $elapsed ms after the kill"
deadline=$((SECONDS + 15))
until "$bin" status --node "$(addr "$survivor")" --json | grep -q '"alive": false'; do
  ((SECONDS < deadline)) || break
  sleep 0.1
done
"$bin" status --node "$(addr "$survivor")"

step "testing goes on under the new leader"
echo "# more" >>"$repo/README.md"
commit "add a readme"
"$bin" notify --node "$(addr "$survivor")"
results_when_done "$survivor" 4

step "restarting $leader with its data dir: it rejoins as a follower"
start "$victim"
deadline=$((SECONDS + 30))
until [ -n "$(leader_of "$victim" || true)" ] && [ "$(alive_seen_by "$victim" || true)" = 3 ]; do
  ((SECONDS < deadline)) || { echo "error: $leader did not rejoin" >&2; exit 1; }
  sleep 0.1
done
for i in 1 2 3; do
  echo "--- asked of n$i"
  "$bin" status --node "$(addr "$i")" | head -2
done

step "results, asked of every node"
for i in 1 2 3; do
  echo "--- n$i"
  results_when_done "$i" 4
done

step "done; stopping the cluster"
