#!/usr/bin/env bash
# Builds (once, cached outside the clone) everything the test world runs that is not ours:
# kube-apiserver, kubectl and etcd from Go modules, and moto's server in a Python venv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need go "install Go 1.25 or newer (https://go.dev/dl) — it builds kube-apiserver and etcd"
need python3 "install Python 3.9 or newer — it runs moto"

mkdir -p "$CACHE_DIR"
if [ ! -x "$K8S_BIN/kube-apiserver" ] || [ ! -x "$K8S_BIN/kubectl" ] || [ ! -x "$K8S_BIN/etcd" ]; then
  log "building kube-apiserver, kubectl and etcd into $K8S_BIN (cold: about 6 minutes)"
  start=$SECONDS
  tmp="$K8S_BIN.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  ( cd "$K8S_TOOLS_MOD" && ver=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
    minor=$(echo "$ver" | cut -d. -f2)
    pkg=k8s.io/component-base/version
    ldflags="-s -w -X $pkg.gitVersion=$ver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$ver -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3 )
  mv "$tmp/server" "$tmp/etcd"
  rm -rf "$K8S_BIN" && mv "$tmp" "$K8S_BIN"
  log "built Kubernetes tools in $((SECONDS - start))s"
fi

if [ ! -f "$MOTO_VENV/.complete" ]; then
  log "installing moto[server]==$MOTO_VERSION into $MOTO_VENV"
  start=$SECONDS
  rm -rf "$MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  if ! "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "moto[server,ec2,route53,secretsmanager,sts,iam,ssm]==$MOTO_VERSION"; then
    rm -rf "$MOTO_VENV"
    die "pip could not install moto[server]==$MOTO_VERSION (is PyPI reachable?)"
  fi
  touch "$MOTO_VENV/.complete"
  log "installed moto in $((SECONDS - start))s"
fi
