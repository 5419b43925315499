# Sourced by run.sh and bench.sh: use the running test world, or bring one up and take it down
# again on exit (a world someone else started is left running). Then installs the CRDs.
state=${TESTENV_STATE_DIR:-tests/e2e/.testenv}
if ! { [ -f "$state/pids" ] && [ -f "$state/env" ] && (source "$state/env" && kubectl get --raw /readyz >/dev/null 2>&1); }; then
  tests/e2e/testenv/up.sh
  trap 'tests/e2e/testenv/down.sh' EXIT
elif [ -n "${AWS_MODEL:-}" ]; then
  echo "testenv: AWS_MODEL=$AWS_MODEL ignored: the world in $state is already up; its AWS model: $(source "$state/env" && echo "${TESTENV_AWS_MODEL:-off (started before the model existed)}")" >&2
fi
source "$state/env"
kubectl apply --server-side --force-conflicts -f charts/molecule-operator/crds >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/tenants.moleculesai.app crd/workspaces.moleculesai.app >/dev/null
