#!/usr/bin/env bash
# A local tour of Eventide: builds the release binary, creates an example repository
# with Python unittest tests, starts a 3-node cluster on loopback with a runner on every
# node, makes commits (one of them breaks a test) and shows their results as they land,
# kills the leader with kill -9, shows the new leader and that testing goes on, prints
# the results from every node, runs a pipeline (a package step whose artifact two matrix
# jobs test, then a report), and stops everything it started on exit (Ctrl-C too).
#
#   scripts/demo.sh                 # ports 7801-7803
#   BASE_PORT=9001 scripts/demo.sh
#   EVENTIDE_BIN=target/debug/eventide-node scripts/demo.sh   # this binary, no release build
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/nodes.sh
source scripts/lib/nodes.sh

base_port=${BASE_PORT:-7801}
work=$(mktemp -d -t eventide-demo-XXXXXX)
NODES_WORK=$work
NODES_GRACE=5
nodes_traps

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ -n "${EVENTIDE_BIN:-}" ] || step "building eventide-node (release)"
nodes_binary ""
bin=$BIN

nodes_require_free_ports "$base_port" "$((base_port + 1))" "$((base_port + 2))"
addr() { echo "127.0.0.1:$((base_port + $1 - 1))"; }
addrs="$(nodes_addrs "$base_port" "$((base_port + 1))" "$((base_port + 2))")"

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
  nodes_start "n$1" "n$1" "$work/n$1" "$work/n$1.log" "$(addr "$1")" "$addrs" --repo "$repo"
  # The leader is killed with kill -9 later: no job notice for it.
  disown "${NODE_PIDS[n$1]}"
}

leader_other_than() {  # node, name that does not count
  local leader
  leader=$(nodes_leader "$(addr "$1")" || true)
  [ -n "$leader" ] && [ "$leader" != "${2:-}" ] && echo "$leader"
}

wait_leader() {
  NODES_POLL=0.05 nodes_wait 30 "no leader after 30 s; logs are in $work" leader_other_than "$@"
}

step "starting 3 nodes: $(addr 1) $(addr 2) $(addr 3)"
for i in 1 2 3; do start "$i"; done
leader=$(wait_leader 1)
echo "leader elected: $leader"
echo "dashboard: http://$(addr 1)/ (any node serves it; metrics at /metrics)"
"$bin" status --node "$(addr 1)"

step "watched repositories (asked of n2)"
repo_listed() { "$bin" repo list --node "$(addr 2)" | grep -q "$repo"; }
nodes_wait 15 "repository not registered" repo_listed
"$bin" repo list --node "$(addr 2)"

# Waits until node $1 lists $2 jobs, all final, then prints them.
all_final() {  # node, count
  "$bin" results --node "$(addr "$1")" --json --limit 1000 2>/dev/null | python3 -c '
import json, sys
jobs = json.load(sys.stdin)
done = [j for j in jobs if j["state"] not in ("queued", "running")]
sys.exit(0 if len(jobs) >= int(sys.argv[1]) and len(done) == len(jobs) else 1)' "$2"
}
results_when_done() {
  nodes_wait 60 "$2 results did not arrive; logs are in $work" all_final "$1" "$2" || exit 1
  "$bin" results --node "$(addr "$1")"
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
kill -9 "${NODE_PIDS[n$victim]}"
new_leader=$(wait_leader "$survivor" "$leader")
elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
echo "new leader: $new_leader, seen by n$survivor $elapsed ms after the kill"
victim_dead() { "$bin" status --node "$(addr "$survivor")" --json | grep -q '"alive": false'; }
nodes_wait 15 "" victim_dead || true
"$bin" status --node "$(addr "$survivor")"

step "testing goes on under the new leader"
echo "# more" >>"$repo/README.md"
commit "add a readme"
"$bin" notify --node "$(addr "$survivor")"
results_when_done "$survivor" 4

step "restarting $leader with its data dir: it rejoins as a follower"
start "$victim"
rejoined() {
  [ -n "$(nodes_leader "$(addr "$victim")" || true)" ] && [ "$(nodes_alive "$(addr "$victim")" || true)" = 3 ]
}
nodes_wait 30 "$leader did not rejoin" rejoined
for i in 1 2 3; do
  echo "--- asked of n$i"
  "$bin" status --node "$(addr "$i")" | head -2
done

step "results, asked of every node"
for i in 1 2 3; do
  echo "--- n$i"
  results_when_done "$i" 4
done

step "a pipeline: package once, test the package in two modes on any runners, then report"
cat >"$repo/.eventide.toml" <<'TOML'
[[step]]
name = "package"
command = "mkdir -p dist && python3 -m zipfile -c dist/calc.zip calc.py"
artifacts = ["dist/*.zip"]

[[step]]
name = "test"
depends_on = ["package"]
matrix = { optimize = ["0", "1"] }
# The package from the step before, not the checkout's calc.py, is what gets tested.
command = "rm calc.py && PYTHONOPTIMIZE=$MATRIX_OPTIMIZE PYTHONPATH=dist/calc.zip python3 -m unittest discover -s tests -v"

[[step]]
name = "report"
depends_on = ["test"]
command = "python3 -m zipfile -l dist/calc.zip"
TOML
cat "$repo/.eventide.toml"
commit "test a package in a pipeline"
head=$(git -C "$repo" rev-parse HEAD)
build_final() {  # node
  "$bin" results --builds --commit "$head" --node "$(addr "$1")" --json 2>/dev/null | python3 -c '
import json, sys
builds = json.load(sys.stdin)
sys.exit(0 if builds and builds[0]["state"] not in ("queued", "running") else 1)'
}
nodes_wait 60 "the pipeline's build did not end; logs are in $work" build_final 1 || exit 1
"$bin" results --builds --commit "$head" --node "$(addr 2)"
package=$("$bin" results --builds --commit "$head" --node "$(addr 1)" --json | python3 -c '
import json, sys
print(json.load(sys.stdin)[0]["jobs"][0]["id"])')
echo "--- the package's artifacts, asked of n3"
"$bin" artifact list "$package" --node "$(addr 3)"
echo "the step graph: http://$(addr 1)/#/commit/$head"

step "done; stopping the cluster"
