#!/usr/bin/env bash
# Builds the operator image without a Docker engine or a registry (`make image`): the release
# binary, the shared libraries `ldd` lists and the dynamic loader, Debian's CA bundle, passwd and
# group entries for 65532 (nonroot), FROM scratch with buildah, committed to
# target/image/molecule-operator.oci.tar. The Dockerfile describes the same image for a release
# pipeline with BuildKit (docs/image.md).
set -euo pipefail
# shellcheck source=tests/image/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$IMAGE_ROOT"

# release_binary: the one release build of the tree (the first, cold, takes ~12 minutes).
release_binary() {
  [ -z "${MOLECULE_IMAGE_BIN:-}" ] || { image_log "packaging $IMAGE_BIN (MOLECULE_IMAGE_BIN)"; return 0; }
  image_log "cargo build --release -p $IMAGE_PACKAGE --bin molecule-operator"
  cargo build --release --locked -p "$IMAGE_PACKAGE" --bin molecule-operator
  [ -x "$IMAGE_BIN" ] || image_die "no $IMAGE_BIN after the build"
}

# copy_file SRC DEST_IN_ROOTFS MODE: the file SRC resolves to, at DEST inside the root.
copy_file() {
  install -D -m "$3" "$(readlink -f "$1")" "$ROOTFS$2"
}

# copy_copyright PATH: the Debian copyright file of the package owning PATH (licence notices ship
# with the libraries).
copy_copyright() {
  local pkg
  pkg=$(dpkg -S "$(readlink -f "$1")" 2>/dev/null | head -n1 | cut -d: -f1) || true
  if [ -z "$pkg" ]; then pkg=$(dpkg -S "$1" 2>/dev/null | head -n1 | cut -d: -f1) || true; fi
  [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ] || return 0
  install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$ROOTFS/usr/share/doc/$pkg/copyright"
}

# copy_libraries: every library the binary links, at the path ldd resolves it to, and the loader.
copy_libraries() {
  local line path
  while read -r line; do
    case "$line" in
      *"=> not found"*) image_die "ldd: $line" ;;
      *"=> /"*) path=${line#*=> }; path=${path%% (*} ;;
      /*) path=${line%% (*} ;;
      *) continue ;; # linux-vdso: provided by the kernel
    esac
    copy_file "$path" "$path" 0755
    copy_copyright "$path"
    echo "$path"
  done < <(ldd "$IMAGE_BIN")
}

# write_rootfs: the image's whole file tree, staged in target/image/rootfs.
write_rootfs() {
  rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
  copy_file "$IMAGE_BIN" /molecule-operator 0755
  copy_libraries >"$IMAGE_DIR/libraries.txt"
  copy_file "$IMAGE_CA_BUNDLE" "$IMAGE_CA_BUNDLE" 0644
  copy_copyright "$IMAGE_CA_BUNDLE"
  [ -f "$ROOTFS/usr/share/doc/ca-certificates/copyright" ] ||
    install -D -m 0644 /usr/share/doc/ca-certificates/copyright "$ROOTFS/usr/share/doc/ca-certificates/copyright"
  mkdir -p "$ROOTFS/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$ROOTFS/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$ROOTFS/etc/group"
  printf 'hosts: files dns\n' >"$ROOTFS/etc/nsswitch.conf"
  chmod 0644 "$ROOTFS/etc/passwd" "$ROOTFS/etc/group" "$ROOTFS/etc/nsswitch.conf"
  install -d -m 1777 "$ROOTFS/tmp"
  install -d -m 0700 -o 65532 -g 65532 "$ROOTFS/home/nonroot"
  install -d -m 0700 "$ROOTFS/root"
}

# commit_image: FROM scratch + the root + the config, written as an OCI archive.
commit_image() {
  local version revision src_url licenses description epoch created mnt
  version=$(image_version)
  revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  src_url=$(image_cargo_field repository)
  licenses=$(image_cargo_field license)
  description=$(image_cargo_field description)
  # The commit's time, not the build's (labels and config say when the source was, not the build).
  epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
  created=$(date -u -d "@$epoch" +%FT%TZ)
  CTR=$(bah from --name "molecule-operator-build-$$" scratch)
  mnt=$(bah mount "$CTR")
  cp -a "$ROOTFS/." "$mnt/"
  bah umount "$CTR" >/dev/null
  bah config --os linux --arch "$(go_arch)" --user "$IMAGE_USER" --workingdir / \
    --entrypoint "$IMAGE_ENTRYPOINT" --cmd "$IMAGE_CMD" \
    --env "PATH=$IMAGE_PATH" --env "SSL_CERT_FILE=$IMAGE_CA_BUNDLE" \
    --label "org.opencontainers.image.title=molecule-operator" \
    --label "org.opencontainers.image.description=$description" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.source=$src_url" \
    --label "org.opencontainers.image.licenses=$licenses" \
    --label "org.opencontainers.image.created=$created" \
    "$CTR"
  rm -f "$IMAGE_ARCHIVE"
  bah commit --quiet --format oci --identity-label=false --timestamp "$epoch" \
    "$CTR" "oci-archive:$IMAGE_ARCHIVE:$IMAGE_REPOSITORY:$version" >/dev/null
  image_log "built $IMAGE_ARCHIVE ($IMAGE_REPOSITORY:$version, revision $revision)"
}

# go_arch: the OCI architecture name of this machine (amd64, arm64).
go_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
  esac
}

ROOTFS="$IMAGE_DIR/rootfs"
CTR=""
trap '[ -z "$CTR" ] || bah rm "$CTR" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC2119 # no packages beyond buildah and the CA bundle
image_need_packages
release_binary
mkdir -p "$IMAGE_DIR" "$IMAGE_CACHE"
write_rootfs
commit_image
du -b "$IMAGE_ARCHIVE" | awk '{printf "image: archive %.1f MB\n", $1 / 1e6}' >&2
