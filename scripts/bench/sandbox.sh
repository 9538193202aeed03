#!/usr/bin/env bash
# What the job sandbox adds to a trivial job: two one-node clusters side by side, one
# with --sandbox none and one with --sandbox bwrap (and the cgroup limits of
# --job-memory/--job-pids), each watching its own repository whose `.eventide.toml`
# command is `true`. Trials alternate between the two: a commit, a notify, and polls of
# GET /api/v1/jobs?commit=SHA every 2 ms until the result is there. Prints the machine and
# min / median / max of commit -> result and of the job's own started -> finished, for
# each, and the difference of the medians (the goal: under 10 ms).
#
#   scripts/bench/sandbox.sh
#   TRIALS=100 scripts/bench/sandbox.sh
#
# Environment:
#   TRIALS=50          commits per cluster
#   EVENTIDE_BIN=PATH  use this eventide-node instead of building the release binary
#   KEEP_TMP=1         keep the temp dir (node logs)
#
# Needs bubblewrap (scripts/setup.sh). Run it alone: other load on a small machine skews
# it (the load before and after is printed). Stops only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/nodes.sh

TRIALS="${TRIALS:-50}"
nodes_binary "building the release binary (a few minutes the first time)"
command -v bwrap >/dev/null || { echo "error: bwrap is not installed (scripts/setup.sh)" >&2; exit 1; }
NODES_WORK="$(mktemp -d -t eventide-bench-sandbox-XXXXXX)"
NODES_KEEP="${KEEP_TMP:-0}"
nodes_traps
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

read -r -a ports <<<"$(nodes_free_ports 2 | tr '\n' ' ')"
modes=(none bwrap)
for i in 0 1; do
  mode=${modes[$i]}
  repo="$NODES_WORK/repo-$mode"
  mkdir -p "$repo" "$NODES_WORK/$mode"
  git -C "$repo" init -q -b main
  printf '[test]\ncommand = "true"\n' >"$repo/.eventide.toml"
  echo 0 >"$repo/counter.txt"
  git -C "$repo" add -A
  git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid commit -qm first
  addr="127.0.0.1:${ports[$i]}"
  nodes_start "$mode" "$mode" "$NODES_WORK/$mode/data" "$NODES_WORK/$mode/node.log" \
    "$addr" "$addr" --bootstrap-expect 1 --repo "$repo" --poll-interval 1h \
    --sandbox "$mode" --job-memory 1GiB --job-pids 512
done

python3 scripts/bench/sandbox_probe.py --trials "$TRIALS" \
  --none "${ports[0]}:$NODES_WORK/repo-none" --bwrap "${ports[1]}:$NODES_WORK/repo-bwrap"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
