# Persistent data volume (survives stop, start and replacement): wait for the operator to attach
# it, format it only if it is blank, mount it at /home/agent.
DATA_DEV=''
for _ in $(seq 1 120); do
  for dev in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{{VOLUME_ID_NODASH}} /dev/xvdf /dev/sdf; do
    [ -b "$dev" ] && DATA_DEV=$dev && break 2
  done
  sleep 5
done
[ -n "$DATA_DEV" ] || { echo "data volume never appeared"; false; }
blkid "$DATA_DEV" >/dev/null || mkfs.ext4 -q -L molecule-data "$DATA_DEV"
grep -q 'LABEL=molecule-data' /etc/fstab || echo 'LABEL=molecule-data /home/agent ext4 defaults,nofail 0 2' >> /etc/fstab
mount -a
chown agent:agent /home/agent
