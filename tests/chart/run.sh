#!/usr/bin/env bash
# make chart-test: builds helm from Go modules (cached), uses the running test world or brings one
# up (and takes it down again on exit, as tests/e2e/run.sh does), then runs the chart tests
# (tests/chart/*_test.go) with HELM and KUBECONFIG set.
set -euo pipefail
cd "$(dirname "$0")/../.."
HELM=$(tests/chart/install-helm.sh)
export HELM
# shellcheck source=../e2e/testenv/world.sh
source tests/e2e/testenv/world.sh
export PATH KUBECONFIG
(cd tests/chart && go test -count=1 ${CHART_TEST_RUN:+-run "$CHART_TEST_RUN"} ./...)
