#!/usr/bin/env bash
# Checks the image `make image` built (`make image-smoke`): its config (user 65532, entrypoint,
# command, OCI labels), its file tree (the binary, its libraries, the CA bundle, passwd/group, and
# nothing else), `molecule-operator version` run INSIDE the image (buildah run, chroot isolation:
# only the image's libraries are there), then the e2e smoke scenario with the binary copied out of
# the image (MOLECULE_OPERATOR_BIN), against the running test world or one brought up and down.
set -euo pipefail
# shellcheck source=tests/image/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$IMAGE_ROOT"
EXTRACTED="$IMAGE_DIR/extracted/molecule-operator"

fail() { image_die "FAIL: $*"; }
pass() { image_log "ok: $*"; }

# expect WHAT GOT WANT
expect() {
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  pass "$1 = $3"
}

check_config() {
  local config
  config=$(bah inspect --type container "$CTR")
  expect "config user|entrypoint|cmd" "$(field "$config" 'c["User"]+"|"+json.dumps(c["Entrypoint"])+"|"+json.dumps(c["Cmd"])')" \
    "$IMAGE_USER|$(tr -d ' ' <<<"$IMAGE_ENTRYPOINT")|$IMAGE_CMD"
  local key
  for key in title description version revision source licenses created; do
    [ -n "$(field "$config" "l.get('org.opencontainers.image.$key', '')")" ] ||
      fail "label org.opencontainers.image.$key missing or empty"
  done
  pass "OCI labels title, description, version, revision, source, licenses, created"
  expect "label version" "$(field "$config" "l['org.opencontainers.image.version']")" "$VERSION"
  # The commit the image was built from (HEAD may have moved since): a commit of this repository.
  local rev
  rev=$(field "$config" "l['org.opencontainers.image.revision']")
  if ! [[ $rev =~ ^[0-9a-f]{40}$ ]] || ! git cat-file -e "$rev^{commit}"; then
    fail "label revision '$rev' is no commit here"
  fi
  pass "label revision = $rev (a commit of this repository)"
}

# field INSPECT_JSON EXPR: EXPR over the image config c (and its labels l), in Python.
field() {
  python3 -c 'import json,sys; c=json.loads(sys.argv[1])["OCIv1"]["config"]; l=c.get("Labels") or {}; print(eval(sys.argv[2]))' "$1" "$2"
}

# check_tree MOUNT: exactly the expected files, owners and modes; the binary is the release build.
check_tree() {
  local mnt=$1 unexpected
  unexpected=$(cd "$mnt" && find . -type f ! -path ./molecule-operator ! -path './etc/passwd' \
    ! -path './etc/group' ! -path './etc/nsswitch.conf' ! -path ".$IMAGE_CA_BUNDLE" \
    ! -path './usr/share/doc/*/copyright' ! -name '*.so*')
  [ -z "$unexpected" ] || fail "unexpected files in the image: $unexpected"
  local n
  n=$(find "$mnt" -name '*.so*' -type f | wc -l)
  expect "libraries in the image = ldd's list" "$n" "$(wc -l <"$IMAGE_DIR/libraries.txt")"
  expect "image binary = target/release binary" "$(sha256 "$mnt/molecule-operator")" "$(sha256 "$IMAGE_BIN")"
  n=$(grep -c 'BEGIN CERTIFICATE' "$mnt$IMAGE_CA_BUNDLE")
  [ "$n" -gt 100 ] || fail "CA bundle has $n certificates"
  pass "CA bundle with $n certificates"
  expect "passwd entry" "$(grep '^nonroot:' "$mnt/etc/passwd" | cut -d: -f3,4)" "$IMAGE_USER"
  expect "home owner and /tmp mode" "$(stat -c %u:%g "$mnt/home/nonroot") $(stat -c %a "$mnt/tmp")" \
    "$IMAGE_USER 1777"
  SIZE=$(du -sb "$mnt" | cut -f1)
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# check_image: config, tree and `version` in the image; copies the binary out.
check_image() {
  [ -f "$IMAGE_ARCHIVE" ] || fail "no $IMAGE_ARCHIVE: run make image"
  CTR=$(bah from --quiet --name "molecule-operator-smoke-$$" "oci-archive:$IMAGE_ARCHIVE")
  IMG=$(bah inspect --type container --format '{{.FromImageID}}' "$CTR")
  check_config
  local out mnt
  # The tree first: `buildah run` adds /etc/hosts, /etc/resolv.conf and /etc/hostname to it.
  mnt=$(bah mount "$CTR")
  check_tree "$mnt"
  install -D -m 0755 "$mnt/molecule-operator" "$EXTRACTED"
  bah umount "$CTR" >/dev/null
  out=$(bah run --isolation chroot "$CTR" -- /molecule-operator version 2>&1) ||
    fail "molecule-operator version does not run in the image: $out"
  expect "molecule-operator version (inside the image)" "$out" "molecule-operator $VERSION"
  image_log "archive $(du -b "$IMAGE_ARCHIVE" | cut -f1) bytes, file tree $SIZE bytes"
}

cleanup() {
  [ -z "$RUN_PGID" ] || kill -KILL -- "-$RUN_PGID" 2>/dev/null || true
  RUN_PGID=""
  [ -z "$CTR" ] || bah rm "$CTR" >/dev/null 2>&1 || true
  [ -z "$IMG" ] || bah rmi --force "$IMG" >/dev/null 2>&1 || true
  CTR="" IMG=""
}

# smoke_with_extracted: the e2e smoke scenario with the image's binary. First a control run with
# a binary that does not exist, which must fail: it proves the harness runs MOLECULE_OPERATOR_BIN
# and not target/debug's.
smoke_with_extracted() {
  local control="$IMAGE_DIR/control.log"
  if MOLECULE_OPERATOR_BIN=/nonexistent/molecule-operator cargo test -q -p molecule-e2e --test smoke \
    -- operator_runs >"$control" 2>&1; then
    fail "the smoke scenario passed with MOLECULE_OPERATOR_BIN=/nonexistent (log: $control)"
  fi
  grep -q 'nonexistent/molecule-operator' "$control" || fail "the control run failed for another reason: $control"
  pass "control: the smoke scenario fails with a missing MOLECULE_OPERATOR_BIN"
  MOLECULE_OPERATOR_BIN="$EXTRACTED" cargo test -p molecule-e2e --test smoke
  pass "smoke scenario with the image's binary"
}

# operator_env_args: --env NAME=VALUE for the test world's settings, as the harness passes them,
# but no credentials on a command line: AWS keys go in a shared credentials file, and the
# Cloudflare token is left out (the operator then runs without tunnels, which it says).
operator_env_args() {
  local name
  for name in $(grep -oE '(^export | )[A-Z][A-Z0-9_]*=' tests/e2e/.testenv/env | tr -d ' =' | sed 's/^export//'); do
    case $name in
      PATH | KUBECONFIG | AWS_ACCESS_KEY_ID | AWS_SECRET_ACCESS_KEY | CLOUDFLARE_API_TOKEN) ;;
      *) printf -- '--env\n%s=%s\n' "$name" "${!name}" ;;
    esac
  done
}

# operator_in_image: `molecule-operator run` INSIDE the image (uid 65532, only the image's files
# plus the test world's state mounted read-only) against the test world: /healthz answers, it
# logs "started", and SIGTERM stops it.
operator_in_image() {
  local dir port state="$IMAGE_ROOT/tests/e2e/.testenv" log="$IMAGE_DIR/operator-in-image.log" args=()
  dir=$(mktemp -d) && chmod 0755 "$dir"
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$dir/credentials"
  chmod 0644 "$dir/credentials"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  mapfile -t args < <(operator_env_args)
  CTR=$(bah from --quiet --name "molecule-operator-run-$$" "oci-archive:$IMAGE_ARCHIVE")
  IMG=$(bah inspect --type container --format '{{.FromImageID}}' "$CTR")
  # Its own process group, so that SIGTERM reaches the operator under buildah's runtime.
  setsid "${BAH[@]}" run --isolation chroot --volume "$state:$state:ro" --volume "$dir:/aws:ro" "${args[@]}" \
    --env "KUBECONFIG=$TESTENV_OPERATOR_KUBECONFIG" --env AWS_SHARED_CREDENTIALS_FILE=/aws/credentials \
    --env "METRICS_ADDR=127.0.0.1:$port" --env WORKSPACE_SELECTOR=molecule-e2e=smoke-none \
    "$CTR" -- /molecule-operator run >"$log" 2>&1 &
  RUN_PGID=$!
  wait_until 30 curl -fsS "http://127.0.0.1:$port/healthz" || fail "operator in the image not healthy: $(cat "$log")"
  wait_until 30 grep -q 'molecule-operator started' "$log" || fail "operator in the image did not start: $(cat "$log")"
  pass "operator runs inside the image against the test world (healthy, started)"
  local op rc=0
  op=$(ps -o pid=,uid=,args= --sid "$RUN_PGID" | awk '$2 == 65532 && $3 == "/molecule-operator" {print $1}')
  [ -n "$op" ] || fail "no process of uid 65532 under buildah run: $(ps -o pid=,uid=,args= --sid "$RUN_PGID")"
  pass "the operator runs as uid 65532 (pid $op)"
  # What the kubelet does: SIGTERM to the operator alone. It must stop cleanly, exit status 0.
  kill -TERM "$op"
  wait_until 15 bash -c "! kill -0 $op" || fail "operator in the image ignored SIGTERM"
  wait "$RUN_PGID" || rc=$?
  RUN_PGID=""
  expect "exit status after SIGTERM" "$rc" 0
  rm -rf "$dir"
}

# wait_until SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

start=$SECONDS
# shellcheck disable=SC2119 # no packages beyond buildah and the CA bundle
image_need_packages
VERSION=$(image_version)
CTR="" IMG="" RUN_PGID=""
SIZE=0
trap cleanup EXIT
check_image
cleanup
trap - EXIT
# world.sh: the running test world, or one brought up now and taken down on exit.
source tests/e2e/testenv/world.sh
# world.sh's own EXIT trap (taking down a world it brought up) runs after ours.
WORLD_DOWN=$(trap -p EXIT)
trap 'cleanup; [ -z "$WORLD_DOWN" ] || tests/e2e/testenv/down.sh' EXIT
operator_in_image
cleanup
smoke_with_extracted
image_log "image-smoke passed in $((SECONDS - start))s"
