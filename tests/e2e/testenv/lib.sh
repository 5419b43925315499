# Shared settings of the test world scripts. Sourced, never run.
# shellcheck shell=bash

TESTENV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
E2E_DIR="$TESTENV_ROOT/tests/e2e"
STATE_DIR="${TESTENV_STATE_DIR:-$E2E_DIR/.testenv}"
CACHE_DIR="${MOLECULE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/molecule-testenv}"

# Pinned versions. The Kubernetes release is the one in tools/k8s/go.mod; etcd comes from the
# same module graph (the version kube-apiserver itself is tested with).
K8S_TOOLS_MOD="$E2E_DIR/tools/k8s"
MOTO_VERSION="5.2.5"
MOTO_VENV="$CACHE_DIR/venv-moto-$MOTO_VERSION"

# The tools directory is keyed by a hash of the wrapper module, so a version bump rebuilds.
k8s_tools_key() {
  cat "$K8S_TOOLS_MOD/go.mod" "$K8S_TOOLS_MOD/go.sum" "$K8S_TOOLS_MOD/tools.go" "$E2E_DIR/testenv/build-tools.sh" | sha256sum | cut -c1-12
}
K8S_BIN="$CACHE_DIR/k8s-$(k8s_tools_key)"

die() { echo "testenv: $*" >&2; exit 1; }
log() { echo "testenv: $*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  log "$what is up"
}
