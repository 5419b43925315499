#!/usr/bin/env bash
# Builds helm from Go modules into ~/.cache/molecule-testenv/helm-<version>/helm (no download of a
# prebuilt binary). The ldflags are those of helm's own Makefile, with the Kubernetes version set to
# the test world's kube-apiserver (1.35), so .Capabilities.KubeVersion and `helm lint` see 1.35
# instead of helm's fallback 1.20. Prints the binary's path.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
K8S_MAJOR=1 K8S_MINOR=35
CACHE_DIR="${MOLECULE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/molecule-testenv}"
out="$CACHE_DIR/helm-$HELM_VERSION"
if [ -x "$out/helm" ] && [ -f "$out/.complete-k8s-$K8S_MAJOR.$K8S_MINOR" ]; then
  echo "$out/helm"; exit 0
fi
command -v go >/dev/null || { echo "install-helm: go not found (install Go 1.24+)" >&2; exit 1; }
mkdir -p "$out"
ld="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ld+=" -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done
echo "install-helm: building helm $HELM_VERSION from Go modules (about a minute)" >&2
GOBIN="$out" CGO_ENABLED=0 GOFLAGS=-trimpath go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
"$out/helm" version --short >&2
touch "$out/.complete-k8s-$K8S_MAJOR.$K8S_MINOR"
echo "$out/helm"
