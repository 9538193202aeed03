#!/usr/bin/env bash
# git2 (libgit2) against the git CLI for the one thing a node does over the network:
# fetching a repository's branches into a bare mirror. Both talk to the same server,
# `git http-backend` behind nginx + fcgiwrap on http://127.0.0.1, so both use a network
# transport and the server's cost is the same for both.
#   fresh:        an empty mirror fetches the whole history (COMMITS commits)
#   incremental:  a mirror holding all but the last INCREMENT commits fetches the rest
# Prints the machine and min / median / max (seconds) of RUNS runs of each.
#
#   scripts/bench/fetch.sh
#   COMMITS=5000 RUNS=3 scripts/bench/fetch.sh
#
# Environment:
#   COMMITS=20000   history length, made with git fast-import (FILES files of LINES lines in
#                   20 directories, CHANGES files changed per commit, repacked so the
#                   server sends deltas)
#   FILES=100       files in the tree
#   LINES=60        lines of ~50 bytes per file
#   CHANGES=1       files each commit changes
#   INCREMENT=100   commits the incremental fetch brings
#   RUNS=5          repetitions of each measurement
#   KEEP_TMP=1      keep the temp dir
#
# The git2 side is the `git2_fetch` example of eventide-node (git2's fetch with the
# refspec and options the node used before it moved to the CLI);
# dependencies, libgit2 included, are built optimised in the dev profile. Needs nginx,
# fcgiwrap (scripts/setup.sh) and python3. Stops only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

COMMITS="${COMMITS:-20000}"
FILES="${FILES:-100}"
LINES="${LINES:-60}"
CHANGES="${CHANGES:-1}"
INCREMENT="${INCREMENT:-100}"
RUNS="${RUNS:-5}"
KEEP_TMP="${KEEP_TMP:-0}"
for name in COMMITS INCREMENT RUNS FILES CHANGES LINES; do
  [[ "${!name}" =~ ^[1-9][0-9]*$ ]] || { echo "$name must be a positive integer" >&2; exit 2; }
done
((INCREMENT < COMMITS)) || { echo "INCREMENT must be below COMMITS" >&2; exit 2; }
for program in nginx fcgiwrap python3 git; do
  command -v "$program" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$program" >/dev/null 2>&1 || { echo "$program missing: run scripts/setup.sh" >&2; exit 1; }
done

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [[ "$KEEP_TMP" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git_quiet() { git -c user.name=b -c user.email=b@example.invalid "$@"; }

echo "building the git2 side (the git2_fetch example of eventide-node)" >&2
cargo build -p eventide-node --example git2_fetch >&2
git2_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/examples/git2_fetch"
[[ -x "$git2_bin" ]] || { echo "could not find the git2_fetch example at $git2_bin" >&2; exit 1; }

echo "making $COMMITS commits" >&2
python3 - "$COMMITS" "$FILES" "$CHANGES" "$LINES" >"$WORK/history.fi" <<'EOF'
import sys
commits, files, changes, line_count = (int(arg) for arg in sys.argv[1:5])
out = sys.stdout.buffer
for i in range(1, commits + 1):
    message = f"commit {i}\n"
    parent = f"from :{i - 1}\n" if i > 1 else ""
    out.write((f"commit refs/heads/main\nmark :{i}\n"
               f"committer b <b@example.invalid> {1700000000 + i} +0000\n"
               f"data {len(message)}\n{message}\n{parent}").encode())
    for c in range(changes):
        f = (i * changes + c) % files
        # Each revision changes a line, so deltas are small.
        lines = [f"file {f} line {n} {'x' * 40} {(n * 7919 + i // files) % 1000}\n"
                 for n in range(line_count)]
        lines[i % line_count] = f"changed by commit {i}\n"
        blob = "".join(lines)
        out.write((f"M 100644 inline src/d{f % 20}/f{f}.txt\n"
                   f"data {len(blob)}\n{blob}\n").encode())
EOF
mkdir -p "$WORK/repos"
git init --quiet --bare "$WORK/repos/full.git"
git -C "$WORK/repos/full.git" fast-import --quiet <"$WORK/history.fi"
git -C "$WORK/repos/full.git" repack -adq
git clone --quiet --bare --no-local "$WORK/repos/full.git" "$WORK/repos/base.git"
git -C "$WORK/repos/base.git" update-ref refs/heads/main "refs/heads/main~$INCREMENT"
git -C "$WORK/repos/base.git" reflog expire --expire=now --all
git -C "$WORK/repos/base.git" gc --prune=now --quiet
echo "pack of the full history: $(du -sh "$WORK/repos/full.git/objects/pack" | cut -f1)" >&2

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
backend="$(git --exec-path)/git-http-backend"
mkdir -p "$WORK/nginx/tmp"
fcgiwrap -s "unix:$WORK/nginx/fcgiwrap.sock" >"$WORK/nginx/fcgiwrap.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            client_max_body_size 0;
            fastcgi_buffering off;
            fastcgi_pass unix:$WORK/nginx/fcgiwrap.sock;
            fastcgi_param SCRIPT_FILENAME $backend;
            fastcgi_param GIT_PROJECT_ROOT $WORK/repos;
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO \$uri;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param GIT_PROTOCOL \$http_git_protocol;
        }
    }
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=($!)
base_url="http://127.0.0.1:$port/base.git"
full_url="http://127.0.0.1:$port/full.git"
for _ in $(seq 200); do
  git ls-remote "$full_url" >/dev/null 2>&1 && break
  sleep 0.05
done
git ls-remote "$full_url" >/dev/null || { cat "$WORK/nginx/error.log" >&2; exit 1; }

now() { date +%s.%N; }
# fetch_cli MIRROR URL / fetch_git2 MIRROR URL: one fetch, prints its seconds.
fetch_cli() {
  local started; started="$(now)"
  git --git-dir "$1" fetch --quiet --prune --no-tags --no-write-fetch-head -- "$2" \
    '+refs/heads/*:refs/heads/*'
  python3 -c "print(f'{$(now) - $started:.3f}')"
}
fetch_git2() {
  "$git2_bin" "$2" "$1" | sed -n 's/^git2_fetch_seconds=//p'
}

# The mirror of base.git every incremental run starts from (made once, by the CLI).
git init --quiet --bare "$WORK/base-mirror"
fetch_cli "$WORK/base-mirror" "$base_url" >/dev/null

declare -A RESULTS=()
for run in $(seq "$RUNS"); do
  for tool in cli git2; do
    rm -rf "$WORK/m"; git init --quiet --bare "$WORK/m"
    RESULTS["$tool fresh"]+="$("fetch_$tool" "$WORK/m" "$full_url") "
    rm -rf "$WORK/m"; cp -a "$WORK/base-mirror" "$WORK/m"
    RESULTS["$tool incremental"]+="$("fetch_$tool" "$WORK/m" "$full_url") "
    heads="$(git --git-dir "$WORK/m" rev-parse refs/heads/main)"
    [[ "$heads" == "$(git -C "$WORK/repos/full.git" rev-parse refs/heads/main)" ]] ||
      { echo "$tool fetched the wrong head" >&2; exit 1; }
  done
  echo "run $run of $RUNS done" >&2
done

echo "machine: $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "git: $(git --version | cut -d' ' -f3), history: $COMMITS commits of $CHANGES of $FILES files of $LINES lines, increment: $INCREMENT, runs: $RUNS"
printf '%-22s %8s %8s %8s\n' "fetch (seconds)" min median max
for key in "cli fresh" "git2 fresh" "cli incremental" "git2 incremental"; do
  python3 - "$key" ${RESULTS[$key]} <<'EOF'
import statistics, sys
values = sorted(float(v) for v in sys.argv[2:])
print(f"{sys.argv[1]:<22} {values[0]:8.3f} {statistics.median(values):8.3f} {values[-1]:8.3f}")
EOF
done
