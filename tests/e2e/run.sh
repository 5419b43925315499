#!/usr/bin/env bash
# Runs the end-to-end scenarios. Brings the test world up if it is not, and then takes it down
# again afterwards (a world someone else started is left running).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/testenv/world.sh
cargo test -p molecule-e2e --tests -- --test-threads=4
