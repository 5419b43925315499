# Desktop (noVNC): Xvfb + XFCE + x11vnc + noVNC, every listener on localhost only. Reached
# through an SSH tunnel over EC2 Instance Connect; no display port is open in a security group.
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q xvfb xfce4 x11vnc novnc websockify
{{GPU_DRIVER}}
unit() { # unit NAME EXEC
  printf '[Unit]\nDescription=molecule %s\n[Service]\nUser=agent\nEnvironment=DISPLAY=:1\nRestart=always\nExecStart=%s\n[Install]\nWantedBy=multi-user.target\n' "$1" "$2" \
    > "/etc/systemd/system/molecule-$1.service"
}
unit xvfb "/usr/bin/Xvfb :1 -screen 0 {{WIDTH}}x{{HEIGHT}}x24 -nolisten tcp"
unit xfce "/usr/bin/startxfce4"
unit x11vnc "/usr/bin/x11vnc -display :1 -localhost -rfbport 5901 -forever -shared -nopw"
unit novnc "/usr/bin/websockify --web /usr/share/novnc 127.0.0.1:6080 127.0.0.1:5901"
systemctl daemon-reload
systemctl enable --now molecule-xvfb molecule-xfce molecule-x11vnc molecule-novnc
DISPLAY_PROBE='curl -sf http://127.0.0.1:6080/vnc.html'
{{DISPLAY_HEALTH}}
