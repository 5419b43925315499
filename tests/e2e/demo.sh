#!/usr/bin/env bash
# `make run`: the test world, the CRDs, the operator as a process, and the samples applied;
# then watches `kubectl get tn,ws`. Ctrl-C stops the operator and the test world.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/e2e/testenv/up.sh
source tests/e2e/.testenv/env
op_pid=""
cleanup() {
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  tests/e2e/testenv/down.sh
}
trap cleanup EXIT
trap 'exit 130' INT TERM
kubectl apply --server-side -f charts/molecule-operator/crds
kubectl wait --for=condition=Established --timeout=60s crd/tenants.moleculesai.app crd/workspaces.moleculesai.app
# The metrics port is picked like every test-world port: free, on loopback.
source tests/e2e/testenv/lib.sh
metrics_addr="127.0.0.1:$(free_port)"
KUBECONFIG="$TESTENV_OPERATOR_KUBECONFIG" CLOUDFLARE_ALLOW_HTTP=true METRICS_ADDR="$metrics_addr" target/debug/molecule-operator run &
op_pid=$!
kubectl apply -f config/samples/namespaces.yaml
kubectl apply -f config/samples/
echo "molecule-operator runs as pid $op_pid with its own ServiceAccount; Ctrl-C stops everything."
echo "In another shell: source tests/e2e/.testenv/env && kubectl get molecule -A"
echo "Metrics, health and readiness: http://$metrics_addr/metrics, /healthz, /readyz"
while kill -0 "$op_pid" 2>/dev/null; do
  clear 2>/dev/null || true
  date
  kubectl get tn,ws -A -o wide || true
  sleep 3
done
echo "the operator exited"; exit 1
