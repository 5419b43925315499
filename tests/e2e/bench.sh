#!/usr/bin/env bash
# `make bench`: brings the test world up if it is not (and down again afterwards), installs the
# CRDs, and runs the benchmark binary for each size given (default: 50 100).
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
echo "# molecule-operator benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
target/debug/bench "$@"
