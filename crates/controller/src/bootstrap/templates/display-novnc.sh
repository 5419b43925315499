# Desktop (noVNC): Xvfb + XFCE + x11vnc + noVNC, every listener on localhost only. Reached
# through an SSH tunnel over EC2 Instance Connect; no display port is open in a security group.
# x11vnc asks for the Workspace's display password from a 0600 file of the display user (never
# argv); X takes a cookie, so no local process gets around the password.
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q xvfb xauth xfce4 x11vnc novnc websockify
{{GPU_DRIVER}}
D=/etc/molecule/display
install -d -m 0700 -o agent -g agent "$D"
(umask 077; secret_field displayPassword > "$D/passwd"; touch "$D/Xauthority"
 echo "add :1 . $(mcookie)" | xauth -f "$D/Xauthority" source -)
chown agent:agent "$D/passwd" "$D/Xauthority" && chmod 0600 "$D/passwd" "$D/Xauthority"
unit() { # unit NAME EXEC
  printf '[Unit]\nDescription=molecule %s\n[Service]\nUser=agent\nEnvironment=DISPLAY=:1 XAUTHORITY=%s\nRestart=always\nExecStart=%s\n[Install]\nWantedBy=multi-user.target\n' "$1" "$D/Xauthority" "$2" \
    > "/etc/systemd/system/molecule-$1.service"
}
unit xvfb "/usr/bin/Xvfb :1 -screen 0 {{WIDTH}}x{{HEIGHT}}x24 -nolisten tcp -auth $D/Xauthority"
unit xfce "/usr/bin/startxfce4"
unit x11vnc "/usr/bin/x11vnc -display :1 -auth $D/Xauthority -localhost -rfbport 5901 -forever -shared -passwdfile $D/passwd"
unit novnc "/usr/bin/websockify --web /usr/share/novnc 127.0.0.1:6080 127.0.0.1:5901"
systemctl daemon-reload
systemctl enable --now molecule-xvfb molecule-xfce molecule-x11vnc molecule-novnc
DISPLAY_PROBE='curl -sf http://127.0.0.1:6080/vnc.html'
{{DISPLAY_HEALTH}}
