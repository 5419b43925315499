#!/usr/bin/env bash
# Starts the local test world on free loopback ports and writes tests/e2e/.testenv/env:
# etcd, kube-apiserver (TLS, RBAC, an admin and an operator kubeconfig), moto's server, the fault
# proxy in front of moto, and the Cloudflare fake; then seeds the fake AWS account.
# Stop it with down.sh, which stops exactly the processes recorded here, by PID.
# AWS_MODEL=off|realistic|'{"clientToken":true,"listingLagMs":..,"purgeAfterMs":..}' (default off)
# makes moto behave like AWS where it is kinder (tests/e2e/testenv/aws_model.py, docs/testing.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need openssl "install openssl (apt-get install openssl) — it makes the API server's certificates"
need curl "install curl (apt-get install curl)"
[ -x "$K8S_BIN/kube-apiserver" ] || die "kube-apiserver not built: run tests/e2e/testenv/build-tools.sh (or make tools)"
[ -f "$MOTO_VENV/.complete" ] || die "moto not installed: run tests/e2e/testenv/build-tools.sh (or make tools)"
AWS_MODEL=${AWS_MODEL:-off}
case "$AWS_MODEL" in
  off|realistic) AWS_MODEL_JSON="{\"profile\": \"$AWS_MODEL\"}" ;;
  \{*) AWS_MODEL_JSON=$AWS_MODEL ;;
  *) die "AWS_MODEL=$AWS_MODEL: expected off, realistic or a JSON object" ;;
esac
FAKES_BIN="${FAKES_BIN:-$TESTENV_ROOT/target/debug}"
[ -x "$FAKES_BIN/cloudflare-fake" ] && [ -x "$FAKES_BIN/fault-proxy" ] ||
  die "cloudflare-fake/fault-proxy not built: run cargo build -p molecule-e2e --bins (or make testenv-up)"

if [ -f "$STATE_DIR/pids" ]; then
  while read -r _ pid; do
    kill -0 "$pid" 2>/dev/null && die "already up (pid $pid alive): run make testenv-down first"
  done < "$STATE_DIR/pids"
fi
rm -rf "$STATE_DIR" && mkdir -p "$STATE_DIR"/{pki,logs,etcd}
cd "$STATE_DIR"
started=$SECONDS

# Every started process goes into pids as "name pid"; a failure tears all of them down.
start() {
  local name=$1; shift
  "$@" >"logs/$name.log" 2>&1 &
  echo "$name $!" >> pids
}
trap 'status=$?; if [ $status -ne 0 ]; then log "start failed; logs in $STATE_DIR/logs"; "$E2E_DIR/testenv/down.sh" >/dev/null 2>&1 || true; fi' EXIT

# A port given in the environment must be free; otherwise pick one.
port() {
  local var=$1 p=${!1:-}
  if [ -n "$p" ]; then
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p ($var) is in use: stop what listens there or unset $var"
    echo "$p"
  else
    free_port
  fi
}
ETCD_PORT=$(port TESTENV_ETCD_PORT); ETCD_PEER_PORT=$(port TESTENV_ETCD_PEER_PORT)
API_PORT=$(port TESTENV_API_PORT); MOTO_PORT=$(port TESTENV_MOTO_PORT)
PROXY_PORT=$(port TESTENV_PROXY_PORT); CF_PORT=$(port TESTENV_CLOUDFLARE_PORT)

# --- PKI: a CA, the API server's serving cert, the admin client cert, the service-account key.
(
  cd pki
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=molecule-testenv-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
    -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=testenv-admin" -keyout admin.key -out admin.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
    -extfile client.ext -out admin.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)

# --- etcd
start etcd "$K8S_BIN/etcd" --data-dir "$STATE_DIR/etcd" --name testenv \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "testenv=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health" || die "etcd did not start; see $STATE_DIR/logs/etcd.log"

# --- kube-apiserver (the flags envtest uses, plus RBAC and service-account tokens)
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --cert-dir "$STATE_DIR/pki" --tls-cert-file pki/apiserver.crt --tls-private-key-file pki/apiserver.key \
  --client-ca-file pki/ca.crt --authorization-mode RBAC \
  --service-cluster-ip-range 10.0.0.0/24 --service-account-issuer "https://127.0.0.1:$API_PORT" \
  --service-account-key-file pki/sa.pub --service-account-signing-key-file pki/sa.key \
  --disable-admission-plugins ServiceAccount --enable-admission-plugins ValidatingAdmissionPolicy \
  --allow-privileged=true \
  --enable-priority-and-fairness=false --profiling=false --v=0
readyz() { curl -sf --cacert pki/ca.crt --cert pki/admin.crt --key pki/admin.key "https://127.0.0.1:$API_PORT/readyz"; }
wait_for kube-apiserver 90 readyz || die "kube-apiserver did not become ready; see $STATE_DIR/logs/kube-apiserver.log"

SERVER="https://127.0.0.1:$API_PORT"
kubeconfig() { # kubeconfig FILE USER-STANZA...
  local file=$1; shift
  cat > "$file" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "$SERVER", certificate-authority: "$STATE_DIR/pki/ca.crt"}
contexts:
- name: testenv
  context: {cluster: testenv, user: user, namespace: default}
current-context: testenv
users:
- name: user
  user: $*
KCFG
}
kubeconfig admin.kubeconfig "{client-certificate: \"$STATE_DIR/pki/admin.crt\", client-key: \"$STATE_DIR/pki/admin.key\"}"
KC=("$K8S_BIN/kubectl" --kubeconfig "$STATE_DIR/admin.kubeconfig")

# --- the operator's identity: a real ServiceAccount bound to the chart's RBAC rules, and the
# chart's admission policies (Tenant deletion protection).
OPERATOR_NAMESPACE=molecule-system
"${KC[@]}" create namespace "$OPERATOR_NAMESPACE" >/dev/null 2>&1 || true
"$E2E_DIR/testenv/rbac.sh" "$OPERATOR_NAMESPACE" > rbac.yaml
"${KC[@]}" apply -f rbac.yaml >/dev/null
TOKEN=$("${KC[@]}" -n "$OPERATOR_NAMESPACE" create token molecule-operator --duration 48h)
kubeconfig operator.kubeconfig "{token: \"$TOKEN\"}"

# --- moto (EC2, Route 53, Secrets Manager, STS, IAM, SSM, SQS) with AWS-like validation switched on,
# started by moto_launcher.py, which loads the AWS model (off until configured after seeding)
MAIN_REGION=us-east-1; CANARY_REGION=us-west-2
start moto env MOTO_ENABLE_AMI_VALIDATION=true MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true \
  AWS_DEFAULT_REGION=$MAIN_REGION "$MOTO_VENV/bin/python" "$E2E_DIR/testenv/moto_launcher.py" -H 127.0.0.1 -p "$MOTO_PORT"
wait_for moto 60 curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" || die "moto did not start; see $STATE_DIR/logs/moto.log"

# --- the fault proxy in front of moto, and the Cloudflare fake
CF_TOKEN="cf-testenv-$(openssl rand -hex 12)"
CF_ACCOUNT=$(openssl rand -hex 16); CF_ZONE=$(openssl rand -hex 16)
start fault-proxy "$FAKES_BIN/fault-proxy" --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$MOTO_PORT"
start cloudflare-fake "$FAKES_BIN/cloudflare-fake" --listen "127.0.0.1:$CF_PORT" \
  --token "$CF_TOKEN" --account "$CF_ACCOUNT" --zone "$CF_ZONE" --zone-name moleculesai.test
# moto never runs user-data: bootsim tags booted instances as their bootstrap would.
start bootsim env AWS_ACCESS_KEY_ID=testenv AWS_SECRET_ACCESS_KEY=testenv AWS_REGION=$MAIN_REGION \
  "$FAKES_BIN/bootsim" --endpoint "http://127.0.0.1:$MOTO_PORT"
wait_for fault-proxy 20 curl -sf "http://127.0.0.1:$PROXY_PORT/__faults/healthz" || die "fault-proxy did not start"
wait_for cloudflare-fake 20 curl -sf "http://127.0.0.1:$CF_PORT/healthz" || die "cloudflare-fake did not start"

# --- seed the fake AWS account (direct to moto: seeding is not the operator's traffic)
AWS_ACCESS_KEY_ID=testenv AWS_SECRET_ACCESS_KEY=testenv \
  "$MOTO_VENV/bin/python" "$E2E_DIR/testenv/seed.py" --endpoint "http://127.0.0.1:$MOTO_PORT" \
  --region "$MAIN_REGION" --canary-region "$CANARY_REGION" --out "$STATE_DIR" > seed.env

# --- the AWS model, once the account is seeded (seeding needs no lag)
curl -sf -X POST --data-binary "$AWS_MODEL_JSON" "http://127.0.0.1:$MOTO_PORT/__aws_model" > aws-model.json ||
  die "moto refused AWS_MODEL=$AWS_MODEL: $(curl -s -X POST --data-binary "$AWS_MODEL_JSON" "http://127.0.0.1:$MOTO_PORT/__aws_model")"
log "AWS model: $(cat aws-model.json)"

# --- the env file a shell or a test sources
{
  echo "# Written by tests/e2e/testenv/up.sh; source it: . tests/e2e/.testenv/env"
  echo "export PATH=\"$K8S_BIN:\$PATH\""
  echo "export KUBECONFIG=\"$STATE_DIR/admin.kubeconfig\""
  echo "export TESTENV_STATE_DIR=\"$STATE_DIR\""
  echo "export TESTENV_OPERATOR_KUBECONFIG=\"$STATE_DIR/operator.kubeconfig\""
  echo "export TESTENV_MOTO_URL=\"http://127.0.0.1:$MOTO_PORT\""
  echo "export TESTENV_FAULTS_URL=\"http://127.0.0.1:$PROXY_PORT/__faults\""
  echo "export TESTENV_AWS_MODEL='$(cat aws-model.json)'"
  echo "export TESTENV_MOTO_PYTHON=\"$MOTO_VENV/bin/python\""
  echo "export AWS_ENDPOINT_URL=\"http://127.0.0.1:$PROXY_PORT\""
  echo "export AWS_ACCESS_KEY_ID=testenv AWS_SECRET_ACCESS_KEY=testenv"
  echo "export AWS_REGION=$MAIN_REGION AWS_DEFAULT_REGION=$MAIN_REGION"
  echo "export AWS_EC2_METADATA_DISABLED=true"
  echo "export CLOUDFLARE_API_URL=\"http://127.0.0.1:$CF_PORT/client/v4\""
  echo "export CLOUDFLARE_ALLOW_HTTP=true"
  echo "export CLOUDFLARE_API_TOKEN=\"$CF_TOKEN\""
  echo "export CLOUDFLARE_ACCOUNT_ID=$CF_ACCOUNT CLOUDFLARE_ZONE_ID=$CF_ZONE"
  echo "export TENANT_BASE_DOMAIN=moleculesai.test"
  echo "export OPERATOR_NAMESPACE=$OPERATOR_NAMESPACE"
  echo "export MOLECULE_ENV=dev MOLECULE_OPERATOR_ID=molecule-operator"
  echo "export CANARY_REGION=$CANARY_REGION"
  echo "export EC2_INSTANCE_TYPE=t3.small"
  echo "export TENANT_IMAGE=ghcr.io/moleculesai/tenant:testenv CANARY_TENANT_IMAGE=ghcr.io/moleculesai/tenant:canary"
  echo "export CP_BASE_URL=https://cp.moleculesai.test"
  echo "export TENANT_BACKUP_S3_PREFIX=s3://molecule-testenv-backups/tenants"
  echo "export IMAGE_CATALOG_FILE=\"$STATE_DIR/images.yaml\""
  cat seed.env
} > env
trap - EXIT
log "up in $((SECONDS - started))s: source $STATE_DIR/env"
