#!/usr/bin/env bash
# Checks that the Dockerfile and tests/image/build.sh (via lib.sh) describe the same image: user,
# entrypoint, command, binary path, CA bundle, OCI labels and their fixed values, the release build
# command, the pinned toolchain and the Debian release. No build, no engine: seconds.
set -euo pipefail
# shellcheck source=tests/image/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$IMAGE_ROOT"
DOCKERFILE=Dockerfile
errors=0

# has LINE: the Dockerfile holds LINE (fixed string, a whole line but for indentation, a LABEL
# keyword and a continuation backslash).
has() {
  if grep -Eq "^[[:space:]]*(LABEL[[:space:]]+)?$(sed 's/[][\.*^$/|(){}+?]/\\&/g' <<<"$1")[[:space:]]*(\\\\)?$" "$DOCKERFILE"; then
    echo "image: ok: Dockerfile has: $1"
  else
    echo "image: FAIL: Dockerfile lacks: $1" >&2
    errors=$((errors + 1))
  fi
}

label() { has "org.opencontainers.image.$1=\"$2\""; }

has "USER $IMAGE_USER"
has "ENTRYPOINT $IMAGE_ENTRYPOINT"
has "CMD $IMAGE_CMD"
has "ENV SSL_CERT_FILE=$IMAGE_CA_BUNDLE"
has "COPY --from=builder /out/molecule-operator /molecule-operator"
has "WORKDIR /"
label title molecule-operator
label description "$(image_cargo_field description)"
label licenses "$(image_cargo_field license)"
# The labels set from build args: the Dockerfile holds the references themselves (${VERSION}, ...).
for key in version revision source created; do label "$key" "\${${key^^}}"; done
has "ARG SOURCE=$(image_cargo_field repository)"
has "cargo build --release --locked --target \"\$triple\" -p $IMAGE_PACKAGE --bin molecule-operator;"
# The builder's toolchain is rust-toolchain.toml's; both stages and this machine are Debian 12
# (build.sh copies this machine's glibc, the Dockerfile's runtime has distroless debian12's).
channel=$(python3 -c 'import tomllib; print(tomllib.load(open("rust-toolchain.toml","rb"))["toolchain"]["channel"])')
has "ARG RUST_IMAGE=docker.io/library/rust:$channel-slim-bookworm"
has "ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot"
debian=$(cut -d. -f1 /etc/debian_version)
if [ "$debian" != 12 ]; then
  echo "image: FAIL: this machine is Debian $debian; the Dockerfile's runtime is Debian 12" >&2
  errors=$((errors + 1))
fi
[ "$errors" -eq 0 ] || { echo "image: $errors difference(s) between Dockerfile and build.sh" >&2; exit 1; }
echo "image: Dockerfile and tests/image/build.sh describe the same image"
