#!/usr/bin/env bash
# Instructions per request under valgrind's callgrind: Strongroom's native Encrypt,
# GenerateDataKey and AWS-API (SigV4) Encrypt against the axum hello-world baselines, in the
# same run. Repeatable where wall-clock figures are not (see bench/instructions.py); writes
# target/bench/instructions.md.
#
#   bash bench/instructions.sh                  # about 3 minutes after the release build
#   BENCH_REQUESTS=2000 bash bench/instructions.sh
#
# Needs valgrind (Debian `valgrind`, installed here when missing) and the tests' Python venv
# (botocore signs the AWS request).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/need.sh
need valgrind valgrind

source scripts/python-venv.sh

cargo build --release --locked -p strongroom -p strongroom-bench-hello
exec "$venv/bin/python" bench/instructions.py
