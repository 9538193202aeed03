#!/usr/bin/env bash
# Installs what building and testing Eventide needs beyond the Rust toolchain, git and
# python3, on a Debian-like machine (as root, with apt-get); anything already present is
# left alone, so running it again is cheap. Called by scripts/test.sh and .ci/run.
#   - a C compiler and zlib: libgit2 is built from source by git2's -sys crate;
#   - Chromium: the dashboard's browser test (tests/tests/t90_dashboard.rs);
#   - iproute2 and nftables: the chaos test puts nodes in network namespaces and cuts
#     links between them (tests/tests/t95_chaos.rs);
#   - the git CLI's network side (openssh-client, openssl): nodes fetch with `git fetch`;
#   - nginx-light, fcgiwrap and openssh-server: the real https and ssh git servers of the
#     remote tests (tests/src/gitserver.rs), run from temp dirs on loopback ports, never
#     as system services;
#   - bubblewrap: the job sandbox (the sandbox tests, and every test's jobs by default);
#   - cargo-nextest: the test runner.
set -euo pipefail

missing=()
{ command -v cc >/dev/null 2>&1 && [ -e /usr/include/zlib.h ]; } ||
  missing+=(build-essential zlib1g-dev pkg-config)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
# Daemons live in sbin, which is not always on PATH.
has_sbin() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
has_sbin nginx || missing+=(nginx-light)
has_sbin fcgiwrap || missing+=(fcgiwrap)
has_sbin sshd || missing+=(openssh-server)

if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "warning: missing ${missing[*]}; install them (Debian package names) or some tests fail" >&2
  fi
fi

# sshd refuses to start without its privilege separation directory.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
  mkdir -p /run/sshd
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (the test runner) from crates.io" >&2
  cargo install cargo-nextest --locked
fi
