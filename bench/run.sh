#!/usr/bin/env bash
# Strongroom's benchmark with its baselines, measured in the same run on this machine:
# an axum hello-world and a bare JSON+base64+AES-GCM handler (bench/hello), moto's server,
# criterion micro-benchmarks against raw aws-lc-rs, and `openssl speed`. Prints a table of
# ratios against the targets in docs/performance.md and writes target/bench/report.md.
#
#   bash bench/run.sh                 # about 4 minutes on 2 cores, after the release build
#   BENCH_DURATION=10s BENCH_KEYS=100000 bash bench/run.sh
#
# Needs wrk (Debian `wrk`, installed here when missing), openssl, and the Python venv of the
# tests (target/test-venv: boto3 signs the AWS requests, moto is the comparison).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/need.sh
need wrk wrk
command -v openssl >/dev/null || { echo "openssl (the CLI) is needed for the openssl speed baseline" >&2; exit 1; }

source scripts/python-venv.sh

cargo build --release --locked -p strongroom -p strongroom-bench-hello
cargo build --release --locked -p strongroom-client --example envelope_workload
exec "$venv/bin/python" bench/run.py
