#!/usr/bin/env bash
# Bounded cargo-fuzz runs of Eventide's fuzz targets (fuzz/), one after the other, with
# a summary of executions and the result per target.
#
#   scripts/fuzz.sh                         # every target, 60 s each
#   scripts/fuzz.sh --seconds 300 codec     # one target, 5 minutes
#
# Targets: codec (every type the codec decodes), internal_rpc (the Raft routes in
# process and the dispatcher's decoder), admission (the gossip admission handshake's
# checks), repo_config (.eventide.toml). The corpus grows in fuzz/corpus/<target>/ (not
# committed); the regression inputs under consensus/tests/fuzz_corpus/ and
# node/tests/fuzz_corpus/ seed it. A crash leaves its
# input in fuzz/artifacts/<target>/: fix the bug, then add the input to the regression
# corpus so that the normal test suite replays it.
#
# cargo-fuzz needs nightly compiler features; RUSTC_BOOTSTRAP=1 unlocks them on the
# stable toolchain. FUZZ_SANITIZER (default none: the code is safe Rust and panics,
# aborts, timeouts and leaks are what is looked for) may be set to address.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(codec internal_rpc admission repo_config)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"

seeds_of() {
  case "$1" in
    codec) echo consensus/tests/fuzz_corpus/codec ;;
    internal_rpc) echo "consensus/tests/fuzz_corpus/raft_rpc node/tests/fuzz_corpus/dispatch_rpc" ;;
    admission) echo node/tests/fuzz_corpus/admission ;;
    repo_config) echo node/tests/fuzz_corpus/repo_config ;;
    *) echo "unknown target $1 (codec, internal_rpc, admission, repo_config)" >&2; return 1 ;;
  esac
}

(cd fuzz && cargo fuzz build --sanitizer "$sanitizer" --debug-assertions 2>&1 | tail -n 3) \
  || { echo "build failed" >&2; exit 1; }

summary=()
failed=0
for target in "${targets[@]}"; do
  seeds=$(seeds_of "$target")
  mkdir -p "fuzz/corpus/$target"
  log="fuzz/target/fuzz-$target.log"
  corpus_dirs=("corpus/$target")
  for dir in $seeds; do corpus_dirs+=("../$dir"); done
  echo "== $target: ${seconds}s" >&2
  set +e
  (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" "${corpus_dirs[@]}" -- \
      -max_total_time="$seconds" -timeout=30 -print_final_stats=1) >"$log" 2>&1
  status=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    failed=1
    artifact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -n 1)
    result="FAILED (exit $status${artifact:+, input $artifact}; log $log)"
  fi
  summary+=("$(printf '%-14s executions %-10s %s' "$target" "${execs:-?}" "$result")")
done

echo
for line in "${summary[@]}"; do echo "$line"; done
exit "$failed"
