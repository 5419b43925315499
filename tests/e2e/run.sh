#!/usr/bin/env bash
# Runs the end-to-end scenarios. Brings the test world up if it is not, and then takes it down
# again afterwards (a world someone else started is left running).
set -euo pipefail
cd "$(dirname "$0")/../.."
state=tests/e2e/.testenv
ours=0
if ! { [ -f "$state/pids" ] && [ -f "$state/env" ] && (source "$state/env" && kubectl get --raw /readyz >/dev/null 2>&1); }; then
  tests/e2e/testenv/up.sh
  ours=1
fi
[ $ours = 1 ] && trap 'tests/e2e/testenv/down.sh' EXIT
source "$state/env"
kubectl apply --server-side --force-conflicts -f charts/molecule-operator/crds >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/tenants.moleculesai.app crd/workspaces.moleculesai.app >/dev/null
cargo test -p molecule-e2e --tests -- --test-threads=4
