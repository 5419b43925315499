# Data volume: wait for it, format it only if blank (zeros), mount it; no mount, no agent.
DATA_MNT=/home/agent
DATA_DEV=''
for _ in $(seq 1 120); do
  for dev in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{{VOLUME_ID_NODASH}} /dev/xvdf /dev/sdf; do
    [ -b "$dev" ] && DATA_DEV=$dev && break 2
  done
  sleep 5
done
[ -n "$DATA_DEV" ] || { echo "data volume never appeared"; false; }
probe=0
blkid -p "$DATA_DEV" >/dev/null 2>&1 || probe=$?
if [ $probe = 2 ]; then
  cmp -s -n 1048576 "$DATA_DEV" /dev/zero || { echo "$DATA_DEV: no filesystem, not blank: untouched"; false; }
  mkfs.ext4 -q -L molecule-data "$DATA_DEV"
  formatted=1
elif [ $probe != 0 ]; then
  echo "blkid failed on $DATA_DEV ($probe): not formatted"; false
fi
grep -q 'LABEL=molecule-data' /etc/fstab || echo 'LABEL=molecule-data /home/agent ext4 defaults,nofail 0 2' >> /etc/fstab
mkdir -p $DATA_MNT
mount -a
mountpoint -q $DATA_MNT || { echo "$DATA_MNT not mounted: agent not started"; false; }
[ -z "${formatted:-}" ] || echo "{{VOLUME_ID}} formatted $(date -u +%FT%TZ)" > $DATA_MNT/.molecule-formatted
chown agent:agent $DATA_MNT
