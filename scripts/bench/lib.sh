# What the benchmark scripts share; sourced from the repository root.

# Sets BIN to $EVENTIDE_BIN, or to a release binary built now.
eventide_binary() {
  if [[ -n "${EVENTIDE_BIN:-}" ]]; then
    BIN="$EVENTIDE_BIN"
  else
    echo "building the release binary (cargo build --release -p eventide-node)" >&2
    cargo build --release -p eventide-node >&2
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/eventide-node"
  fi
  [[ -x "$BIN" ]] || { echo "no executable eventide-node at $BIN" >&2; exit 1; }
}
