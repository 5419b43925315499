# syntax=docker/dockerfile:1.7
# The molecule-operator image, for a release pipeline with Docker BuildKit (docker buildx):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(git log -1 --format=%cI)" \
#     -t ghcr.io/moleculesai/molecule-operator:0.1.0 --push .
#
# `make image` builds the same image without a Docker engine (tests/image/build.sh, buildah FROM
# scratch): same paths, user, labels, entrypoint and command. Change both together; docs/image.md
# lists how they correspond and what differs. `make image-smoke` checks this file still agrees.

# Base images by tag; a release pipeline pins them by digest (tag@sha256:...) and lets a bot bump
# them. The builder's Debian release must be the runtime's (glibc 2.36 in both).
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- builder: runs on the build machine's platform and cross-compiles for the target one ----
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS builder
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src
# The Rust target of the image's platform, and a cross C toolchain (linker, and the C compiler
# aws-lc-sys needs) when that is not the build machine's.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    set -eux; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) triple=aarch64-unknown-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported platform linux/$TARGETARCH" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /rust-target; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $cross; \
    fi
# Debian names its compilers by triple, native ones too, so these hold on either build platform.
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# The pinned toolchain of rust-toolchain.toml (the base image's tag names the same release).
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add "$(cat /rust-target)" && rustc --version
COPY . .
ARG VERSION
# Dependencies stay compiled between builds in BuildKit cache mounts (registry, git, target dir).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=molecule-operator-target-${TARGETARCH},target=/src/target,sharing=locked \
    set -eux; \
    triple="$(cat /rust-target)"; \
    crate="$(cargo pkgid -p molecule-operator)"; crate="${crate##*[#@]}"; \
    if [ -n "${VERSION:-}" ] && [ "$VERSION" != "$crate" ]; then \
      echo "VERSION=$VERSION but the crate is $crate" >&2; exit 1; \
    fi; \
    cargo build --release --locked --target "$triple" -p molecule-operator --bin molecule-operator; \
    install -D -m 0755 "target/$triple/release/molecule-operator" /out/molecule-operator

# ---- runtime: glibc, libgcc_s, CA certificates and the nonroot user (65532), nothing else ----
FROM ${RUNTIME_IMAGE}
ARG VERSION
ARG REVISION
ARG CREATED
ARG SOURCE=https://github.com/moleculesai/molecule-operator
LABEL org.opencontainers.image.title="molecule-operator" \
      org.opencontainers.image.description="The molecule-operator binary: reconciles Tenants and Workspaces onto EC2" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=builder /out/molecule-operator /molecule-operator
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/molecule-operator"]
CMD ["run"]
