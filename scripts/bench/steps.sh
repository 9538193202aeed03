#!/usr/bin/env bash
# What a pipeline step adds to a build's latency, and what an artifact copy costs, on a
# 3-node loopback cluster (one runner slot per node, labels a, b and c). One repository
# per variant, all watched by the same cluster:
#   one       `[test] command = "true"`: a build of one job
#   three     three `[[step]]`s running `true`, each needing the one before, on nodes a,
#             b, a: every step after the first waits for the one before and moves nodes
#   art-N     step `make` on node a writes N MiB of random bytes to dist/blob and declares
#             it an artifact; step `use` on node b needs it and checks it is there
#   plain-N   the same two steps without the artifact: the baseline of art-N
# Trials go round the variants: a commit, a notify, and polls of
# GET /api/v1/builds?commit=SHA every 2 ms until the build is final. Prints the machine,
# then min / median / max of commit -> build final per variant, the step's cost (the
# median difference of three and one, per added step), and per artifact size: the
# producing step's run with and without the artifact (storing it and copying it to a
# second node happen before the step's result), the consuming step's run (fetching it
# into the workspace happens before its command), and the copy rate.
#
#   scripts/bench/steps.sh
#   TRIALS=20 SIZES="1 10 100" scripts/bench/steps.sh
#
# Environment:
#   TRIALS=10          builds per variant
#   SIZES="1 10 100"   artifact sizes, MiB
#   EVENTIDE_BIN=PATH  use this eventide-node instead of building the release binary
#   KEEP_TMP=1         keep the temp dir (node logs)
#
# Run it alone: other load on a small machine skews it (the load before and after is
# printed). Needs about 2 x TRIALS x the sizes of free disk. Stops only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/nodes.sh

TRIALS="${TRIALS:-10}"
SIZES="${SIZES:-1 10 100}"
[[ "$TRIALS" =~ ^[1-9][0-9]*$ ]] || { echo "TRIALS must be a positive integer" >&2; exit 2; }
for size in $SIZES; do
  [[ "$size" =~ ^[1-9][0-9]*$ ]] || { echo "SIZES must be positive integers (MiB)" >&2; exit 2; }
done
nodes_binary "building the release binary (a few minutes the first time)"
NODES_WORK="$(mktemp -d -t eventide-bench-steps-XXXXXX)"
NODES_KEEP="${KEEP_TMP:-0}"
nodes_traps
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# A repository whose .eventide.toml is $2.
make_repo() {
  local repo="$NODES_WORK/repos/$1"
  mkdir -p "$repo"
  git -C "$repo" init -q -b main
  printf '%s' "$2" >"$repo/.eventide.toml"
  echo 0 >"$repo/counter.txt"
  git -C "$repo" add -A
  git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid commit -qm first
  repo_flags+=(--repo "$repo")
  variants+=("$1=$repo")
}
repo_flags=()
variants=()
make_repo one $'[test]\ncommand = "true"\n'
make_repo three $'[[step]]\nname = "first"\ncommand = "true"\nlabels = ["a"]\n
[[step]]\nname = "second"\ndepends_on = ["first"]\ncommand = "true"\nlabels = ["b"]\n
[[step]]\nname = "third"\ndepends_on = ["second"]\ncommand = "true"\nlabels = ["a"]\n'
for size in $SIZES; do
  make_repo "art-$size" "[[step]]
name = \"make\"
command = \"mkdir -p dist && head -c ${size}M /dev/urandom > dist/blob\"
artifacts = [\"dist/blob\"]
labels = [\"a\"]

[[step]]
name = \"use\"
depends_on = [\"make\"]
command = \"test \$(stat -c %s dist/blob) -eq $((size * 1048576))\"
labels = [\"b\"]
"
  make_repo "plain-$size" "[[step]]
name = \"make\"
command = \"mkdir -p dist && head -c ${size}M /dev/urandom > dist/blob\"
labels = [\"a\"]

[[step]]
name = \"use\"
depends_on = [\"make\"]
command = \"true\"
labels = [\"b\"]
"
done

read -r -a ports <<<"$(nodes_free_ports 3 | tr '\n' ' ')"
addrs="$(nodes_addrs "${ports[@]}")"
labels=(a b c)
for i in 0 1 2; do
  name="n$((i + 1))"
  mkdir -p "$NODES_WORK/$name"
  nodes_start "$name" "$name" "$NODES_WORK/$name/data" "$NODES_WORK/$name/node.log" \
    "127.0.0.1:${ports[$i]}" "$addrs" --bootstrap-expect 3 --poll-interval 1h \
    --runner-slots 1 --labels "${labels[$i]}" --artifact-max-file 1GiB \
    --artifact-max-build 4GiB "${repo_flags[@]}"
done

python3 scripts/bench/steps_probe.py --trials "$TRIALS" --ports "${ports[*]}" "${variants[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
