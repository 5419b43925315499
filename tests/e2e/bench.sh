#!/usr/bin/env bash
# `make bench`: brings the test world up if it is not (and down again afterwards), installs the
# CRDs, and runs the benchmark binary for each size given (default: 50 100), then the orphan scan
# benchmark (ORPHAN_BENCH_N orphans of each kind, default 1000).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/testenv/world.sh
echo "# molecule-operator benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
target/debug/bench "$@"
# ORPHAN_BENCH_N=0 skips it (make bench-1000).
[ "${ORPHAN_BENCH_N:-1000}" = 0 ] || target/debug/orphan-bench "${ORPHAN_BENCH_N:-1000}"
