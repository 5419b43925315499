#!/usr/bin/env bash
# Runs the end-to-end scenarios. Brings the test world up if it is not, and then takes it down
# again afterwards (a world someone else started is left running).
#
# Scenarios that need a world of their own (another AWS model, every call counted) run in their
# own make targets, listed in EXTRA_TESTS, not here: ec2_events (make events-e2e), erasure_lag
# (make e2e-erasure-lag) and launch_model (make e2e-launch: its tests switch the model).
# Every other file of tests/e2e/tests runs here.
set -euo pipefail
cd "$(dirname "$0")/../.."
OWN_WORLD="ec2_events erasure_lag launch_model"
tests=()
for f in tests/e2e/tests/*.rs; do
  name=$(basename "$f" .rs)
  case " $OWN_WORLD " in *" $name "*) continue ;; esac
  tests+=(--test "$name")
done
source tests/e2e/testenv/world.sh
# --no-fail-fast: one failing scenario does not hide the others (CI shows every failure).
cargo test -p molecule-e2e --no-fail-fast "${tests[@]}" -- --test-threads=4
