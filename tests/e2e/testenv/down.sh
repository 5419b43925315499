#!/usr/bin/env bash
# Stops exactly the processes up.sh started (by the PIDs it recorded), newest first.
set -uo pipefail
# A second Ctrl-C (make run sends one to the whole group) must not stop the cleanup halfway.
trap "" INT
source "$(dirname "$0")/lib.sh"
[ -f "$STATE_DIR/pids" ] || { log "not up"; exit 0; }
mapfile -t lines < <(tac "$STATE_DIR/pids")
for line in "${lines[@]}"; do
  read -r name pid <<< "$line"
  kill -TERM "$pid" 2>/dev/null && log "stopping $name ($pid)"
done
for line in "${lines[@]}"; do
  read -r name pid <<< "$line"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null && log "killed $name ($pid)"
done
rm -f "$STATE_DIR/pids"
log "down"
