#!/usr/bin/env bash
# Builds the Dockerfile itself, with buildah, against stand-in base images (no registry here):
# "rust" is busybox plus stub rustup/rustc/cargo whose `cargo build` yields the release binary
# `make image` packaged; "distroless" is `make image`'s file tree without the binary. The image the
# Dockerfile makes of them must equal `make image`'s: same files (modes, owners, contents) and the
# same config (user, entrypoint, command, working dir, env, labels). This runs every instruction
# of the Dockerfile (ARG scoping, cache mounts, the VERSION check, COPY --from, LABEL expansion);
# what it cannot run is the real rustup, cargo and apt-get of the pipeline.
set -euo pipefail
# shellcheck source=tests/image/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$IMAGE_ROOT"
STAGE="$IMAGE_DIR/dockerfile-build"
ROOTFS="$IMAGE_DIR/rootfs"

fail() { image_die "FAIL: $*"; }

# stub NAME BODY: an executable shell script /usr/local/bin/NAME in the stand-in rust root.
stub() {
  printf '#!/bin/sh\n%s\n' "$2" >"$STAGE/rust/usr/local/bin/$1"
  chmod 0755 "$STAGE/rust/usr/local/bin/$1"
}

stand_in_rust() {
  local applet
  mkdir -p "$STAGE/rust/bin" "$STAGE/rust/usr/local/bin" "$STAGE/rust/stub" "$STAGE/rust/tmp"
  install -m 0755 "$(command -v busybox)" "$STAGE/rust/bin/busybox"
  for applet in $(busybox --list | grep -vx busybox); do ln -sf busybox "$STAGE/rust/bin/$applet"; done
  install -m 0755 "$IMAGE_BIN" "$STAGE/rust/stub/molecule-operator"
  # coreutils' install -D -m MODE SRC DEST (busybox has none); expanded by the stub, not here
  # shellcheck disable=SC2016
  stub install 'mkdir -p "$(dirname "$5")" && cp "$4" "$5" && chmod "$3" "$5"'
  stub rustup 'echo "stub rustup $*"'
  stub rustc 'echo "rustc 1.95.0 (stub)"'
  stub cargo "case \"\$1\" in
  pkgid) echo \"path+file:///src/crates/controller#molecule-operator@$VERSION\" ;;
  build) while [ \$# -gt 0 ]; do [ \"\$1\" = --target ] && t=\$2; shift; done
         install -D -m 0755 /stub/molecule-operator \"target/\$t/release/molecule-operator\" ;;
  *) echo \"stub cargo: \$*\" >&2; exit 1 ;;
esac"
  bah_image stand-in-rust "$STAGE/rust" --env PATH=/usr/local/bin:/bin
}

stand_in_distroless() {
  mkdir -p "$STAGE/distroless"
  cp -a "$ROOTFS/." "$STAGE/distroless/"
  rm "$STAGE/distroless/molecule-operator"
  bah_image stand-in-distroless "$STAGE/distroless"
}

# bah_image NAME DIR [CONFIG...]: an image NAME in buildah's storage with DIR as its root.
bah_image() {
  local name=$1 dir=$2 ctr mnt
  shift 2
  ctr=$(bah from --name "$name-$$" scratch)
  mnt=$(bah mount "$ctr")
  cp -a "$dir/." "$mnt/"
  bah umount "$ctr" >/dev/null
  [ $# -eq 0 ] || bah config "$@" "$ctr"
  bah commit --quiet --rm --identity-label=false "$ctr" "localhost/$name:latest" >/dev/null
}

# config IMAGE: the compared part of an image's config, one line.
config() {
  bah inspect --type image "$1" | python3 -c 'import json,sys
c=json.load(sys.stdin)["OCIv1"]["config"]
print(json.dumps({k: c.get(k) for k in ("User","Entrypoint","Cmd","WorkingDir","Env","Labels")}, sort_keys=True))'
}

# tree IMAGE: every path with its type, mode, owner and content hash.
tree() {
  local ctr mnt
  ctr=$(bah from --quiet "$1")
  mnt=$(bah mount "$ctr")
  (cd "$mnt" && find . -mindepth 1 -printf '%y %m %U:%G %p\n' | sort -k4 | while read -r t m o p; do
    if [ "$t" = f ]; then echo "$t $m $o $p $(sha256sum <"$p" | cut -c1-16)"; else echo "$t $m $o $p"; fi
  done)
  bah rm "$ctr" >/dev/null
}

# label IMAGE KEY: the image's org.opencontainers.image.KEY label.
label() {
  bah inspect --type image "$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["OCIv1"]["config"]["Labels"]["org.opencontainers.image."+sys.argv[1]])' "$2"
}

cleanup() {
  local name
  for name in localhost/stand-in-rust localhost/stand-in-distroless localhost/molecule-operator-dockerfile \
    "$IMAGE_REPOSITORY:$VERSION"; do
    bah rmi --force "$name" >/dev/null 2>&1 || true
  done
  rm -rf "$STAGE"
}

if ! [ -f "$IMAGE_ARCHIVE" ] || ! [ -d "$ROOTFS" ]; then fail "run make image first"; fi
VERSION=$(image_version)
# BuildKit sets TARGETARCH and BUILDARCH itself; buildah 1.28 does not.
case "$(uname -m)" in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;; esac
image_need_packages busybox:busybox-static
trap cleanup EXIT
cleanup
bah pull --quiet "oci-archive:$IMAGE_ARCHIVE" >/dev/null
REVISION=$(label "$IMAGE_REPOSITORY:$VERSION" revision)
CREATED=$(label "$IMAGE_REPOSITORY:$VERSION" created)
stand_in_rust
stand_in_distroless
# dockerfile_build VERSION: builds the Dockerfile with the stand-ins into localhost/molecule-operator-dockerfile.
dockerfile_build() {
  bah build --pull=never --layers=false --identity-label=false --isolation chroot \
    --build-arg RUST_IMAGE=localhost/stand-in-rust --build-arg RUNTIME_IMAGE=localhost/stand-in-distroless \
    --build-arg TARGETARCH="$ARCH" --build-arg BUILDARCH="$ARCH" \
    --build-arg VERSION="$1" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
    -t localhost/molecule-operator-dockerfile -f Dockerfile . >"$IMAGE_DIR/dockerfile-build.log" 2>&1
}
if dockerfile_build 9.9.9 || ! grep -q 'VERSION=9.9.9 but the crate is' "$IMAGE_DIR/dockerfile-build.log"; then
  fail "the Dockerfile built VERSION=9.9.9 for crate $VERSION: $(tail -5 "$IMAGE_DIR/dockerfile-build.log")"
fi
image_log "ok: the Dockerfile refuses a VERSION that is not the crate's"
dockerfile_build "$VERSION" || fail "buildah build of the Dockerfile failed: $(tail -20 "$IMAGE_DIR/dockerfile-build.log")"
want=$(config "$IMAGE_REPOSITORY:$VERSION")
got=$(config localhost/molecule-operator-dockerfile)
[ "$got" = "$want" ] || fail "config differs:
  Dockerfile: $got
  make image: $want"
image_log "ok: the Dockerfile's config = make image's: $got"
diff <(tree "$IMAGE_REPOSITORY:$VERSION") <(tree localhost/molecule-operator-dockerfile) >"$IMAGE_DIR/tree.diff" ||
  fail "file trees differ (< make image, > Dockerfile): $(cat "$IMAGE_DIR/tree.diff")"
image_log "ok: the Dockerfile's file tree = make image's ($(tree "$IMAGE_REPOSITORY:$VERSION" | wc -l) paths)"
