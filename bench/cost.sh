#!/usr/bin/env bash
# CPU per request, kernel included, for the hello-world, the bare AES handler, health and
# native Encrypt in the same minute (see bench/cost.py); writes target/bench/cost.md.
#
#   bash bench/cost.sh                                   # about a minute after the build
#   BENCH_COMPARE=/tmp/old/strongroom BENCH_ROUNDS=3 bash bench/cost.sh
#
# Needs wrk and perf (Debian `wrk`, `linux-perf`; installed here when missing) and the
# permission to read another process's counters (root, or kernel.perf_event_paranoid <= 2
# for your own processes).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/need.sh
need wrk wrk
need perf linux-perf

cargo build --release --locked -p strongroom -p strongroom-bench-hello
exec python3 bench/cost.py
