# Shared settings of the image scripts (build.sh, smoke.sh). Sourced, never run.
# shellcheck shell=bash disable=SC2034 # the settings are read by the scripts that source this
#
# The image built here and the one the Dockerfile describes are the same image: keep the paths,
# user, labels, entrypoint and command below in step with the Dockerfile (docs/image.md compares
# them line by line).

IMAGE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE_DIR="$IMAGE_ROOT/target/image"
IMAGE_ARCHIVE="$IMAGE_DIR/molecule-operator.oci.tar"
# MOLECULE_IMAGE_BIN: package a binary built elsewhere (no cargo build); default: the release build.
IMAGE_BIN="${MOLECULE_IMAGE_BIN:-$IMAGE_ROOT/target/release/molecule-operator}"
IMAGE_PACKAGE=molecule-operator
# The image's user: distroless's "nonroot" (65532:65532).
IMAGE_USER=65532:65532
IMAGE_ENTRYPOINT='["/molecule-operator"]'
IMAGE_CMD='["run"]'
IMAGE_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# Distroless's PATH (the image has no shell; a debug sidecar or `kubectl debug` may rely on it).
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The chart's default image.repository; the archive's reference name is this with the version tag.
IMAGE_REPOSITORY="ghcr.io/moleculesai/molecule-operator"

# buildah's own storage, outside the clone (vfs: no overlay or fuse needed; chroot: no runc).
IMAGE_CACHE="${MOLECULE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/molecule-testenv}/buildah"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

image_die() { echo "image: $*" >&2; exit 1; }
image_log() { echo "image: $*" >&2; }

# bah ARGS...: buildah on the private storage (BAH: the same as a command line, for setsid).
BAH=(buildah --root "$IMAGE_CACHE/root" --runroot "$IMAGE_CACHE/run" --storage-driver vfs)
bah() {
  "${BAH[@]}" "$@"
}

# image_need_packages [COMMAND:PACKAGE...]: installs buildah (Debian's), the CA bundle and the
# packages of the given commands when missing.
image_need_packages() {
  local missing=() pair
  command -v buildah >/dev/null || missing+=(buildah)
  [ -s "$IMAGE_CA_BUNDLE" ] || missing+=(ca-certificates)
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || image_die "missing ${missing[*]}: install them (apt-get install -y ${missing[*]})"
  image_log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# image_version: the operator crate's version (what `molecule-operator version` prints).
image_version() {
  local id
  id=$(cd "$IMAGE_ROOT" && cargo pkgid -p "$IMAGE_PACKAGE")
  echo "${id##*[#@]}"
}

# image_cargo_field FIELD: a string of the operator's [package], or of [workspace.package] where
# the package inherits it (`field.workspace = true`).
image_cargo_field() {
  python3 - "$IMAGE_ROOT" "$1" <<'PY'
import sys, tomllib
root, field = sys.argv[1], sys.argv[2]
ws = tomllib.load(open(f"{root}/Cargo.toml", "rb"))["workspace"].get("package", {})
pkg = tomllib.load(open(f"{root}/crates/controller/Cargo.toml", "rb"))["package"]
value = pkg.get(field, ws.get(field, ""))
print(ws.get(field, "") if isinstance(value, dict) else value)
PY
}
