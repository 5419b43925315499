# Desktop (Amazon DCV): XFCE in a virtual DCV session bound to localhost only. Reached through an
# SSH tunnel over EC2 Instance Connect; no display port is open in a security group.
# DCV authenticates the OS user agent: its password is the Workspace's display password (its own
# secret), piped to chpasswd (never argv, never user-data).
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q xfce4
{{GPU_DRIVER}}
command -v dcv >/dev/null || { echo "the image must carry Amazon DCV (nice-dcv-server)"; false; }
mkdir -p /etc/dcv
cat > /etc/dcv/dcv.conf <<CONF
[connectivity]
web-listen-endpoints=['127.0.0.1:8443']
[display]
target-fps=30
CONF
{ printf 'agent:'; secret_field displayPassword; } | chpasswd
systemctl enable --now dcvserver
dcv create-session --type virtual --owner agent --init /usr/bin/startxfce4 molecule || true
dcv set-display-layout --session molecule {{WIDTH}}x{{HEIGHT}}+0+0 || true
DISPLAY_PROBE='curl -skf https://127.0.0.1:8443/'
{{DISPLAY_HEALTH}}
