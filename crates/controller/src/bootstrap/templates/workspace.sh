#!/bin/bash
# molecule-operator workspace bootstrap. Rendered by the operator; carries no secret value.
# Its values come from the Workspace's own secret in Secrets Manager (its token, its display
# password), read with the instance role; never the tenant's bootstrap bundle.
set -euo pipefail
exec > >(tee -a /var/log/molecule-bootstrap.log) 2>&1

REGION='{{REGION}}'
SECRET_ARN='{{SECRET_ARN}}'
RUNTIME_IMAGE='{{RUNTIME_IMAGE}}'
AGENT_PORT='{{AGENT_PORT}}'

imds() { # IMDSv2 only: the operator launches with HttpTokens=required.
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
INSTANCE_ID=$(imds instance-id)

ensure_aws_cli() {
  command -v aws >/dev/null && return
  snap install aws-cli --classic 2>/dev/null || { apt-get update -q && apt-get install -y -q awscli; }
}
ensure_aws_cli

tag_self() { # tag_self KEY VALUE: progress the operator reads from its instance cache.
  aws ec2 create-tags --region "$REGION" --resources "$INSTANCE_ID" --tags "Key=$1,Value=$2" || true
}
trap 'tag_self moleculesai.app/boot failed' ERR

hostnamectl set-hostname '{{HOSTNAME}}'
id agent >/dev/null 2>&1 || useradd --create-home --shell /bin/bash agent
{{DATA_VOLUME}}
mkdir -p /etc/molecule
echo '{{ENV_FILE_B64}}' | base64 -d > /etc/molecule/agent.env
chmod 0640 /etc/molecule/agent.env

command -v docker >/dev/null || { apt-get update -q && apt-get install -y -q docker.io; }
systemctl enable --now docker

# The Workspace's own secret, fetched at runtime into a root-only tmpfs file (never user-data).
mkdir -p /run/molecule && chmod 0700 /run/molecule
(umask 077; aws secretsmanager get-secret-value --region "$REGION" --secret-id "$SECRET_ARN" \
  --query SecretString --output text > /run/molecule/workspace.json)
secret_field() { # secret_field KEY: one value of the secret on stdout, never in argv.
  python3 -c 'import json,sys; print(json.load(open("/run/molecule/workspace.json"))[sys.argv[1]])' "$1"
}
{{DISPLAY}}
cat > /etc/systemd/system/molecule-agent.service <<UNIT
[Unit]
Description=molecule agent runtime
After=docker.service
Requires=docker.service
[Service]
Restart=always
ExecStartPre=-/usr/bin/docker rm -f molecule-agent
ExecStart=/usr/bin/docker run --rm --name molecule-agent --network host \
  --env-file /etc/molecule/agent.env -v /home/agent:/home/agent \
  -v /run/molecule/workspace.json:/run/molecule/workspace.json:ro \
  -e MOLECULE_AGENT_PORT=$AGENT_PORT $RUNTIME_IMAGE
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now molecule-agent
trap - ERR
tag_self moleculesai.app/boot ready
