#!/usr/bin/env bash
# Runs every Strongroom test on a fresh machine: formatting, lints, the dependency rules,
# and the whole test suite (unit, store, core, server and end-to-end tests that start the
# real `strongroom` binary). Installs what the tests need first.
#
#   bash scripts/test.sh
#
# Needs: the Rust toolchain named in rust-toolchain.toml (cargo, rustfmt, clippy) and a C
# compiler (aws-lc and SQLite are built from source). No system packages are required by the
# current suite; when a test starts needing one (softhsm2, postgresql, a Python venv), this
# script installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
rustc --version
command -v cc >/dev/null || { echo "a C compiler (cc) is required to build aws-lc and SQLite" >&2; exit 1; }

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency rules: one crypto library (no ring, no openssl)"
# `cargo tree -i` prints nothing (and may still exit 0) when the crate is in Cargo.lock but
# not in the compiled graph; any output means it is compiled in.
for banned in ring openssl-sys; do
  found=$(cargo tree --workspace --locked -e normal --target all -i "$banned" 2>/dev/null || true)
  if [ -n "$found" ]; then
    echo "$banned is in the dependency tree:" >&2
    echo "$found" >&2
    exit 1
  fi
done
echo "ok"

step "tests (cargo test --workspace)"
cargo test --workspace --locked

step "all tests passed"
