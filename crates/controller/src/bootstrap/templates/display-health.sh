# Display health: tag the instance display=ready|offline whenever the probe's answer changes.
cat > /usr/local/bin/molecule-display-health <<HEALTH
#!/bin/bash
last=''
while true; do
  if $DISPLAY_PROBE >/dev/null 2>&1; then now=ready; else now=offline; fi
  if [ "\$now" != "\$last" ]; then
    aws ec2 create-tags --region "$REGION" --resources "$INSTANCE_ID" --tags "Key=moleculesai.app/display,Value=\$now" && last=\$now
  fi
  sleep 15
done
HEALTH
chmod 0755 /usr/local/bin/molecule-display-health
printf '[Unit]\nDescription=molecule display health\n[Service]\nRestart=always\nExecStart=/usr/local/bin/molecule-display-health\n[Install]\nWantedBy=multi-user.target\n' \
  > /etc/systemd/system/molecule-display-health.service
systemctl daemon-reload && systemctl enable --now molecule-display-health
