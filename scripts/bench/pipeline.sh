#!/usr/bin/env bash
# The CI pipeline end to end on loopback: Eventide next to Buildbot 4.3, same repository
# shape (one passing Python unittest), same two runner slots.
#   (a) commit -> result visible: with a post-commit hook, and with 1 s polling
#   (b) 50 quick commits -> all 50 results
#   (c) kill -9 of the node running a job -> the job running again on another node
#   (d) 1,000 commits running `true` on 3 nodes x 2 slots -> jobs/s (Eventide only)
# then prints the machine and one table: min / median / max, the targets, met or missed.
#
#   scripts/bench/pipeline.sh                       # everything, Buildbot included
#   SKIP_BUILDBOT=1 TRIALS=5 scripts/bench/pipeline.sh
#
# Environment:
#   TRIALS=10          commits per latency measurement (a), and kills (c)
#   BURST_RUNS=3       repetitions of (b) for each system; BURST_COMMITS=50
#   BULK_RUNS=3        repetitions of (d); each pushes BULK_BRANCHES=10 x BULK_PER_BRANCH=100
#   SKIP_BUILDBOT=1    run only Eventide (no venv, no Buildbot column)
#   KEEP_TMP=1         keep the temp dir (node logs, Buildbot logs, raw JSON lines)
#   EVENTIDE_BIN=PATH  use this eventide-node instead of building the release binary
#   BUILDBOT_VENV=DIR  where Buildbot is (or gets) installed; default /opt/eventide-bench/buildbot-venv
#
# Setup, for both systems: 2 runner slots for (a)-(c). Eventide runs 3 nodes with
# --runner-slots 1, 1 and 0; Buildbot runs 1 master and 2 workers, collapseRequests=False.
# Hook runs: Eventide's `hook install` (post-commit -> `notify`) with --poll-interval 1h so
# that only the hook starts rounds; Buildbot's post-commit hook POSTs to /change_hook/base
# with no GitPoller. Polling runs: Eventide --poll-interval 1s, Buildbot GitPoller 1 s.
# (b) runs in the polling setup, as Buildbot's; Eventide's (b') repeats it with
# `.eventide.toml` command "true" to show the pipeline without the test's own cost.
# (c) uses `.eventide.toml` command "sleep 6"; kills go on until TRIALS of them hit a runner
# that is not the leader (kills that hit the leader's runner are reported on their own
# row); the killed node is restarted on its data dir before the next kill.
# (d) uses `.eventide.toml` command "true"; the commits are prepared with git fast-import
# on refs outside refs/heads/, then 10 new branches of 100 commits each are created in one
# ref transaction and one notify is sent: one observer round queues all 1,000 (at most
# 100 per branch per round are queued; none is skipped).
#
# Run it alone: on a small machine anything else running skews it (the load before and
# after is printed, and for (b), (b') and (d) where the CPU time went).
# Installs Buildbot with pip in a venv when it is missing. All traffic stays on 127.0.0.1.
# Stops only the PIDs it started; removes its temp dir (unless KEEP_TMP=1).
set -euo pipefail
cd "$(dirname "$0")/../.."

TRIALS="${TRIALS:-10}"
BURST_RUNS="${BURST_RUNS:-3}"
BURST_COMMITS="${BURST_COMMITS:-50}"
BULK_RUNS="${BULK_RUNS:-3}"
BULK_BRANCHES="${BULK_BRANCHES:-10}"
BULK_PER_BRANCH="${BULK_PER_BRANCH:-100}"
SKIP_BUILDBOT="${SKIP_BUILDBOT:-0}"
KEEP_TMP="${KEEP_TMP:-0}"
BUILDBOT_VENV="${BUILDBOT_VENV:-/opt/eventide-bench/buildbot-venv}"
PYTHON="${PYTHON:-python3}"
PROBE="$PWD/scripts/bench/pipeline_probe.py"
SLEEP_JOB=6          # seconds the job of (c) sleeps
HEALTH_DEADLINE=60   # seconds for a (re)started cluster or master to become ready
STEP_DEADLINE=120    # seconds for any single measured wait
for name in TRIALS BURST_RUNS BURST_COMMITS BULK_RUNS BULK_BRANCHES BULK_PER_BRANCH; do
  [[ "${!name}" =~ ^[1-9][0-9]*$ ]] || { echo "$name must be a positive integer" >&2; exit 2; }
done
((BULK_PER_BRANCH <= 100)) || { echo "BULK_PER_BRANCH must be at most 100 (per round cap)" >&2; exit 2; }
((BULK_BRANCHES * BULK_PER_BRANCH <= 1000)) || { echo "at most 1000 bulk commits" >&2; exit 2; }

# shellcheck source=scripts/lib/nodes.sh
source scripts/lib/nodes.sh
WORK="$(mktemp -d "${TMPDIR:-/tmp}/eventide-pipeline.XXXXXX")"
NODES_WORK=$WORK
NODES_KEEP=$KEEP_TMP
NODES_LOGS=("$WORK/bb/master/twistd.log")
nodes_traps

probe() { "$PYTHON" "$PROBE" "$@"; }

# The kill trial kill -9s one of our background nodes; bash would print a "Killed"
# notice for it. The probe's own stderr goes to fd 3 (the real one), the notice nowhere.
kill_probe() { { "$PYTHON" "$PROBE" ev-kill "$@" 2>&3; } 3>&2 2>/dev/null; }

# --- the binaries and the environment -------------------------------------------------
nodes_binary "building the release binary (cargo build --release -p eventide-node)"
unset EVENTIDE_CONFIG EVENTIDE_REPOS EVENTIDE_BOOTSTRAP_EXPECT EVENTIDE_VOTERS EVENTIDE_ADVERTISE \
  EVENTIDE_RUNNER_SLOTS EVENTIDE_POLL_INTERVAL EVENTIDE_SEEDS EVENTIDE_NODE
command -v git >/dev/null || { echo "git is needed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed (Buildbot's post-commit hook)" >&2; exit 1; }

# Both systems' jobs run `python3` from PATH: make that the interpreter itself, not a
# version-manager shim that would add its own start-up time to every job.
PY_EXE="$("$PYTHON" -c 'import sys; print(sys.executable)')"
PATH="$(dirname "$PY_EXE"):$PATH"
export PATH
# Commits made here and by the systems under test ignore the user's git configuration.
printf '[user]\n\tname = bench\n\temail = bench@localhost\n[init]\n\tdefaultBranch = master\n' \
  >"$WORK/gitconfig"
export GIT_CONFIG_GLOBAL="$WORK/gitconfig" GIT_CONFIG_NOSYSTEM=1

if [[ "$SKIP_BUILDBOT" != 1 ]]; then
  if [[ ! -x "$BUILDBOT_VENV/bin/buildbot" || ! -x "$BUILDBOT_VENV/bin/buildbot-worker" ]]; then
    echo "installing Buildbot 4.3.0 with pip into $BUILDBOT_VENV" >&2
    mkdir -p "$(dirname "$BUILDBOT_VENV")"
    "$PY_EXE" -m venv "$BUILDBOT_VENV"
    "$BUILDBOT_VENV/bin/pip" install -q 'buildbot[bundle]==4.3.0' 'buildbot-worker==4.3.0' >&2
  fi
fi

make_repo() {  # dir, kind (unittest | true)
  local dir=$1
  mkdir -p "$dir/tests"
  printf 'start\n' >"$dir/counter.txt"
  cat >"$dir/tests/test_arithmetic.py" <<'PY'
import unittest


class ArithmeticTest(unittest.TestCase):
    def test_addition(self):
        self.assertEqual(2 + 2, 4)
PY
  if [[ "$2" == true ]]; then printf '[test]\ncommand = "true"\n' >"$dir/.eventide.toml"; fi
  git -C "$dir" init -q -b master
  git -C "$dir" add -A
  git -C "$dir" commit -q -m "one passing test"
}

# --- Eventide -------------------------------------------------------------------------
declare -A SLOTS_OF=() POLL_OF=() REPO_OF=() PORTS_OF=()

start_node() {  # cluster, index (1-3)
  local c=$1 i=$2 ports
  read -r -a ports <<<"${PORTS_OF[$c]}"
  nodes_start "$c:$i" "$c-n$i" "$WORK/$c/n$i" "$WORK/$c/n$i.log" "127.0.0.1:${ports[$((i - 1))]}" \
    "$(nodes_addrs "${ports[@]}")" --repo "${REPO_OF[$c]}" --runner-slots "${SLOTS_OF[$c:$i]}" \
    --poll-interval "${POLL_OF[$c]}"
}

start_cluster() {  # cluster, runner nodes expected; prints nothing, waits for health
  local c=$1 i
  for i in 1 2 3; do start_node "$c" "$i"; done
  probe ev-wait --ports "$(ports_csv "$c")" --runners "$2" --deadline "$HEALTH_DEADLINE" >/dev/null
}

stop_cluster() { nodes_stop 10 "$1:1" "$1:2" "$1:3" || true; }

ports_csv() { local p; read -r -a p <<<"${PORTS_OF[$1]}"; (IFS=,; echo "${p[*]}"); }
port_of() { local p; read -r -a p <<<"${PORTS_OF[$1]}"; echo "${p[$(($2 - 1))]}"; }
pids_csv() { echo "${NODE_PIDS[$1:1]},${NODE_PIDS[$1:2]},${NODE_PIDS[$1:3]}"; }

run_eventide_pipeline() {  # (a), (b), (c) on cluster "ev": slots 1+1+0
  local c=ev repo="$WORK/ev-repo" node k victim i done_trials leader_trials
  mkdir -p "$WORK/$c"
  PORTS_OF[$c]="$(nodes_free_ports 3)"
  SLOTS_OF[$c:1]=1 SLOTS_OF[$c:2]=1 SLOTS_OF[$c:3]=0
  REPO_OF[$c]="$repo"
  make_repo "$repo" unittest
  node="127.0.0.1:$(port_of "$c" 1)"
  "$BIN" hook install "$repo" --node "$node" >/dev/null

  echo "eventide: 3 nodes on 127.0.0.1:{$(ports_csv "$c")}, runner slots 1+1+0, repository without .eventide.toml (Python unittest discovery)"
  POLL_OF[$c]=1h
  start_cluster "$c" 2
  probe ev-ready --port "$(port_of "$c" 1)" --repo "$repo" --deadline "$HEALTH_DEADLINE"
  probe ev-warmup --port "$(port_of "$c" 1)" --repo "$repo" --runners 2 --deadline "$STEP_DEADLINE"
  echo "(a) hook: post-commit hook -> notify $node; --poll-interval 1h"
  probe ev-latency --port "$(port_of "$c" 1)" --repo "$repo" --trials "$TRIALS" --label hook \
    --out "$WORK/ev-hook.jsonl" --deadline 30

  rm -f "$repo/.git/hooks/post-commit" "$repo/.git/hooks/post-receive"
  stop_cluster "$c"
  POLL_OF[$c]=1s
  start_cluster "$c" 2
  probe ev-ready --port "$(port_of "$c" 1)" --repo "$repo" --deadline "$HEALTH_DEADLINE"
  echo "(a) polling: no hook; the same 3 nodes restarted with --poll-interval 1s"
  probe ev-latency --port "$(port_of "$c" 1)" --repo "$repo" --trials "$TRIALS" --label poll \
    --out "$WORK/ev-poll.jsonl" --deadline 30

  echo "(b) $BURST_COMMITS quick commits, polling 1 s, $BURST_RUNS runs"
  for ((k = 1; k <= BURST_RUNS; k++)); do
    probe ev-burst --port "$(port_of "$c" 1)" --repo "$repo" --commits "$BURST_COMMITS" \
      --label "burst-$k" --out "$WORK/ev-burst.jsonl" --deadline "$STEP_DEADLINE" --slots 2 \
      --pids "$(pids_csv "$c")"
  done
  echo "(b') the same with .eventide.toml command \"true\" (the pipeline without the test's own cost)"
  probe ev-config --port "$(port_of "$c" 1)" --repo "$repo" --command true \
    --deadline "$STEP_DEADLINE"
  for ((k = 1; k <= BURST_RUNS; k++)); do
    probe ev-burst --port "$(port_of "$c" 1)" --repo "$repo" --commits "$BURST_COMMITS" \
      --label "burst-true-$k" --out "$WORK/ev-burst-true.jsonl" --deadline "$STEP_DEADLINE" \
      --slots 2 --pids "$(pids_csv "$c")"
  done

  echo "(c) kill -9 of the node running a job (command \"sleep $SLEEP_JOB\"); $TRIALS kills of a runner that is not the leader"
  probe ev-config --port "$(port_of "$c" 1)" --repo "$repo" --command "sleep $SLEEP_JOB" \
    --cancel --deadline "$STEP_DEADLINE"
  done_trials=0 leader_trials=0
  # A job may land on the leader's runner: that trial is kept and reported apart, and
  # trials go on until TRIALS kills of a non-leader runner (at most 2 x TRIALS kills).
  for ((k = 1; done_trials < TRIALS && k <= 2 * TRIALS; k++)); do
    kill_probe --ports "$(ports_csv "$c")" --pids "$(pids_csv "$c")" --repo "$repo" \
      --trial "$k" --out "$WORK/ev-kill.jsonl" --port-file "$WORK/victim" --deadline 30
    victim="$(cat "$WORK/victim")"
    if tail -n 1 "$WORK/ev-kill.jsonl" | grep -q '"victim_was_leader": true'; then
      leader_trials=$((leader_trials + 1))
    else
      done_trials=$((done_trials + 1))
    fi
    for i in 1 2 3; do
      [[ "$(port_of "$c" "$i")" == "$victim" ]] || continue
      { nodes_forget "$c:$i"; } 2>/dev/null
      start_node "$c" "$i"
    done
    probe ev-wait --ports "$(ports_csv "$c")" --runners 2 --deadline "$HEALTH_DEADLINE" >/dev/null
    probe ev-ready --port "$(port_of "$c" 1)" --repo "$repo" --deadline "$HEALTH_DEADLINE"
  done
  echo "  (c): $done_trials kills of a runner that was not the leader, $leader_trials of the leader's runner"
  ((done_trials == TRIALS)) || echo "(c) only $done_trials of $((k - 1)) kills hit a runner that was not the leader" >&2
  stop_cluster "$c"
}

run_eventide_bulk() {  # (d) on cluster "bulk": 3 x 2 slots, command "true"
  local c=bulk repo="$WORK/bulk-repo" k
  mkdir -p "$WORK/$c"
  PORTS_OF[$c]="$(nodes_free_ports 3)"
  SLOTS_OF[$c:1]=2 SLOTS_OF[$c:2]=2 SLOTS_OF[$c:3]=2
  POLL_OF[$c]=1s
  REPO_OF[$c]="$repo"
  make_repo "$repo" true
  echo "eventide: 3 nodes on 127.0.0.1:{$(ports_csv "$c")}, runner slots 2+2+2, .eventide.toml command \"true\", --poll-interval 1s"
  start_cluster "$c" 3
  probe ev-ready --port "$(port_of "$c" 1)" --repo "$repo" --deadline "$HEALTH_DEADLINE"
  echo "(d) $BULK_BRANCHES new branches x $BULK_PER_BRANCH commits, one ref transaction + one notify; $BULK_RUNS runs after a warm-up"
  probe ev-throughput --port "$(port_of "$c" 1)" --repo "$repo" --run 0 --branches 3 \
    --per-branch 20 --label warm-up --deadline "$STEP_DEADLINE" --slots 6
  for ((k = 1; k <= BULK_RUNS; k++)); do
    probe ev-throughput --port "$(port_of "$c" 1)" --repo "$repo" --run "$k" \
      --branches "$BULK_BRANCHES" --per-branch "$BULK_PER_BRANCH" --label "run $k" \
      --out "$WORK/ev-throughput.jsonl" --deadline "$STEP_DEADLINE" --slots 6 \
      --pids "$(pids_csv "$c")"
  done
  stop_cluster "$c"
}

# --- Buildbot -------------------------------------------------------------------------
write_master_cfg() {  # master dir, repo, www port, pb port
  cat >"$1/master.cfg" <<EOF
# Benchmark master: the change source is read from mode.txt at every (re)configuration.
import os
from buildbot.plugins import changes, schedulers, steps, util, worker

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
with open(os.path.join(HERE, "mode.txt")) as mode_file:
    MODE = mode_file.read().strip()
REPO = "$2"

c = BuildmasterConfig = {}
c["title"] = "pipeline bench"
c["buildbotURL"] = "http://127.0.0.1:$3/"
c["buildbotNetUsageData"] = None
c["db"] = {"db_url": "sqlite:///state.sqlite"}
c["protocols"] = {"pb": {"port": "tcp:$4:interface=127.0.0.1"}}
c["www"] = {"port": "tcp:$3:interface=127.0.0.1", "plugins": {},
            "change_hook_dialects": {"base": True}}
c["workers"] = [worker.Worker("w1", "secret"), worker.Worker("w2", "secret")]
if MODE == "poll":
    c["change_source"] = [changes.GitPoller(repourl=REPO, branches=["master"], pollInterval=1,
                                            pollAtLaunch=True, workdir="gitpoller")]
else:
    c["change_source"] = []
c["schedulers"] = [schedulers.SingleBranchScheduler(
    name="each-commit", treeStableTimer=None,
    change_filter=util.ChangeFilter(branch="master"), builderNames=["tests"])]
factory = util.BuildFactory([
    steps.Git(repourl=REPO, mode="incremental", name="checkout"),
    steps.ShellCommand(command=["python3", "-m", "unittest", "discover", "-s", "tests", "-v"],
                       name="unittest"),
])
c["builders"] = [util.BuilderConfig(name="tests", workernames=["w1", "w2"], factory=factory,
                                    collapseRequests=False)]
EOF
}

run_buildbot() {
  local dir="$WORK/bb" repo="$WORK/bb-repo" ports www pb k w hook
  mkdir -p "$dir"
  read -r -a ports <<<"$(nodes_free_ports 2)"
  www=${ports[0]} pb=${ports[1]}
  make_repo "$repo" unittest
  "$BUILDBOT_VENV/bin/buildbot" create-master -q "$dir/master" >/dev/null
  write_master_cfg "$dir/master" "$repo" "$www" "$pb"
  echo hook >"$dir/master/mode.txt"
  "$BUILDBOT_VENV/bin/buildbot" checkconfig "$dir/master" >/dev/null
  for w in w1 w2; do
    "$BUILDBOT_VENV/bin/buildbot-worker" create-worker -q "$dir/$w" "127.0.0.1:$pb" "$w" secret >/dev/null
  done
  echo "buildbot: $("$BUILDBOT_VENV/bin/buildbot" --version | head -n 1 | tr -s ' '), 1 master (www :$www, pb :$pb), workers w1 w2, collapseRequests=False, steps Git(incremental) + python3 -m unittest discover -s tests -v"
  nodes_spawn bb:master "$dir/master.log" "$BUILDBOT_VENV/bin/buildbot" start --nodaemon "$dir/master"
  probe bb-wait --www "$www" --workers 0 --deadline "$HEALTH_DEADLINE"
  for w in w1 w2; do
    nodes_spawn "bb:$w" "$dir/$w.log" "$BUILDBOT_VENV/bin/buildbot-worker" start --nodaemon "$dir/$w"
  done
  probe bb-wait --www "$www" --workers 2 --deadline "$HEALTH_DEADLINE"

  hook="$repo/.git/hooks/post-commit"
  cat >"$hook" <<EOF
#!/bin/sh
exec curl -s -o /dev/null --max-time 5 http://127.0.0.1:$www/change_hook/base \\
  -d branch=master -d repository=$repo -d project= -d author=bench \\
  -d "revision=\$(git rev-parse HEAD)" -d "comments=\$(git log -1 --format=%s)"
EOF
  chmod +x "$hook"
  probe bb-warmup --www "$www" --repo "$repo" --deadline "$STEP_DEADLINE"
  echo "(a) hook: post-commit hook -> curl POST /change_hook/base; no GitPoller"
  probe bb-latency --www "$www" --repo "$repo" --trials "$TRIALS" --label hook \
    --out "$WORK/bb-hook.jsonl" --deadline 60

  rm -f "$hook"
  echo poll >"$dir/master/mode.txt"
  probe bb-reconfig --pid "${NODE_PIDS[bb:master]}" --master-dir "$dir/master" --deadline 60
  sleep 3  # GitPoller's first poll records the branch head and builds nothing
  echo "(a) polling: no hook; GitPoller(pollInterval=1)"
  probe bb-latency --www "$www" --repo "$repo" --trials "$TRIALS" --label poll \
    --out "$WORK/bb-poll.jsonl" --deadline 60
  echo "(b) $BURST_COMMITS quick commits, GitPoller 1 s, $BURST_RUNS runs"
  for ((k = 1; k <= BURST_RUNS; k++)); do
    probe bb-burst --www "$www" --repo "$repo" --commits "$BURST_COMMITS" --label "burst-$k" \
      --out "$WORK/bb-burst.jsonl" --deadline 600
  done
  for w in w2 w1 master; do nodes_stop 10 "bb:$w" || true; done
}

# --- run ------------------------------------------------------------------------------
"$PYTHON" scripts/bench/benchlib.py machine
if git rev-parse --git-dir >/dev/null 2>&1; then
  SOURCE="source $(git rev-parse --short HEAD), $(git status --porcelain -- consensus node Cargo.toml Cargo.lock | wc -l) changed files in consensus/ node/ at build time"
else
  SOURCE="source unknown"
fi
echo "eventide: $("$BIN" --version) ($BIN, $SOURCE); python3 for jobs: $PY_EXE ($("$PY_EXE" --version 2>&1)); $(git --version)"
probe machine-load --label "before the run"
echo "timing: from just before \`git commit\` (hooks included) to the first poll answer showing the result; (a) polls every 20 ms, (b) every 20 ms (Eventide) / 250 ms (Buildbot, 3 REST queries a look), (c) every 10 ms"
echo

run_eventide_pipeline
echo
run_eventide_bulk
echo
report=(--dir "$WORK")
if [[ "$SKIP_BUILDBOT" != 1 ]]; then
  run_buildbot
  echo
else
  report+=(--skip-buildbot)
fi
probe machine-load --label "after the run (our processes stopped)"
echo
probe report "${report[@]}"
