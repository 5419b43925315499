#!/bin/bash
# molecule-operator tenant platform bootstrap. Rendered by the operator; carries no secret value.
# Everything secret (credentials, tunnel token, registry token) is in the bootstrap bundle in
# Secrets Manager, read here with the instance role into a root-only tmpfs.
set -euo pipefail
exec > >(tee -a /var/log/molecule-bootstrap.log) 2>&1

REGION='{{REGION}}'
BUNDLE_ARN='{{BUNDLE_ARN}}'
PLATFORM_IMAGE='{{PLATFORM_IMAGE}}'
PLATFORM_PORT='{{PLATFORM_PORT}}'

imds() { # IMDSv2 only: the operator launches with HttpTokens=required.
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
INSTANCE_ID=$(imds instance-id)
command -v aws >/dev/null || snap install aws-cli --classic 2>/dev/null || { apt-get update -q && apt-get install -y -q awscli; }
tag_self() { aws ec2 create-tags --region "$REGION" --resources "$INSTANCE_ID" --tags "Key=$1,Value=$2" || true; }
trap 'tag_self moleculesai.app/boot failed' ERR

hostnamectl set-hostname '{{HOSTNAME}}'
command -v docker >/dev/null || { apt-get update -q && apt-get install -y -q docker.io jq; }
command -v jq >/dev/null || apt-get install -y -q jq
systemctl enable --now docker
command -v cloudflared >/dev/null || {
  curl -fsSL -o /tmp/cloudflared.deb https://github.com/cloudflare/cloudflared/releases/latest/download/cloudflared-linux-amd64.deb
  dpkg -i /tmp/cloudflared.deb
}

mkdir -p /run/molecule /opt/molecule && chmod 0700 /run/molecule
# Reads the bundle into tmpfs and splits it into the files the services read. Run at boot and by
# every redeploy, so a rotated value reaches the platform without a reboot.
cat > /opt/molecule/fetch-bundle.sh <<FETCH
#!/bin/bash
set -euo pipefail
umask 077
aws secretsmanager get-secret-value --region "$REGION" --secret-id "$BUNDLE_ARN" \
  --query SecretString --output text > /run/molecule/bundle.json
jq -r 'to_entries[] | select(.key != "tunnelToken" and .key != "ghcrPullToken") | "MOLECULE_\(.key)=\(.value)"' \
  /run/molecule/bundle.json > /run/molecule/platform.env
echo "TUNNEL_TOKEN=\$(jq -r .tunnelToken /run/molecule/bundle.json)" > /run/molecule/tunnel.env
jq -r '.ghcrPullToken // empty' /run/molecule/bundle.json | docker login ghcr.io -u molecule --password-stdin >/dev/null 2>&1 || true
FETCH
# In-place redeploy (SSM Run Command from the operator): pull, swap the container, no reboot.
cat > /opt/molecule/redeploy.sh <<'REDEPLOY'
#!/bin/bash
set -euo pipefail
/opt/molecule/fetch-bundle.sh
docker pull "$1"
echo "PLATFORM_IMAGE=$1" > /etc/molecule-platform-image
systemctl restart molecule-platform
REDEPLOY
chmod 0700 /opt/molecule/*.sh
/opt/molecule/fetch-bundle.sh
echo "PLATFORM_IMAGE=$PLATFORM_IMAGE" > /etc/molecule-platform-image

cat > /etc/systemd/system/molecule-platform.service <<UNIT
[Unit]
Description=molecule tenant platform
After=docker.service
Requires=docker.service
[Service]
Restart=always
EnvironmentFile=/etc/molecule-platform-image
ExecStartPre=-/usr/bin/docker rm -f molecule-platform
ExecStart=/bin/sh -c 'exec /usr/bin/docker run --rm --name molecule-platform -p 127.0.0.1:$PLATFORM_PORT:$PLATFORM_PORT --env-file /run/molecule/platform.env \$PLATFORM_IMAGE'
[Install]
WantedBy=multi-user.target
UNIT
cat > /etc/systemd/system/molecule-tunnel.service <<UNIT
[Unit]
Description=Cloudflare tunnel of the tenant hostname
After=network-online.target
[Service]
Restart=always
EnvironmentFile=/run/molecule/tunnel.env
ExecStart=/usr/bin/cloudflared tunnel --no-autoupdate run
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now molecule-platform molecule-tunnel
trap - ERR
tag_self moleculesai.app/boot ready
