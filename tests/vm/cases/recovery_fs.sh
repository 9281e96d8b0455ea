#!/bin/bash
# Description: the queue daemon is SIGKILLed every 2 s while mkfs.ext4 runs and while files are
# written to the mounted filesystem; after a remount every file's sha256 matches what was written
# and fsck finds the filesystem clean.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk /var/tmp/src /mnt/r
truncate -s 256M /var/lib/ublk/fs.img
defer rm -rf /var/lib/ublk/fs.img /var/lib/ublk/fs.json /var/tmp/src
echo '{"target":"loop","path":"/var/lib/ublk/fs.img"}' >/var/lib/ublk/fs.json
dev=$(ublkctl create fs --spec /var/lib/ublk/fs.json)
defer ublkctl delete fs --missing-ok
# The backing takes O_DIRECT, so the device is zero-copy where the kernel has AUTO_BUF_REG, and
# each recovered daemon serves it so again (the kernel keeps the flags).
dd if=/var/lib/ublk/fs.img of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null && direct=true || direct=false
want_path=$(loop_data_path $direct /var/lib/ublk/fs.img)
[ "$(ublk_prop fs DataPath)" = "$want_path" ] || fail "DataPath $(ublk_prop fs DataPath), expected $want_path"
for i in $(seq 8); do head -c 2M /dev/urandom >/var/tmp/src/f$i; done
cat /var/tmp/src/f{1..8} >/var/tmp/src/all # what each round's files read back as, end to end

start_killer fs

step "mkfs.ext4 while the queue daemon is killed"
before=$(wc -l </var/tmp/kills)
mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$dev" || fail "mkfs.ext4 failed"
# At least one kill lands right after mkfs, while its writes are being flushed.
after_mkfs=$(wc -l </var/tmp/kills)
kills_beyond() { [ "$(wc -l </var/tmp/kills)" -gt "$1" ]; }
wait_until 20 kills_beyond "$after_mkfs" || fail "no kill hit the queue daemon in 20 s after mkfs"
sync "$dev"
echo "  $(($(wc -l </var/tmp/kills) - before)) kills during mkfs"

step "write files to the mounted filesystem while the queue daemon is killed"
mount "$dev" /mnt/r
defer "umount /mnt/r 2>/dev/null || true"
# Rounds of 16 MiB, each synced, a second apart, for 20 s (at most 12 rounds fit the filesystem).
rounds=0
end=$((SECONDS + 20))
while [ $SECONDS -lt $end ] && [ $rounds -lt 12 ]; do
  rounds=$((rounds + 1))
  for i in $(seq 8); do cp /var/tmp/src/f$i /mnt/r/r$rounds-f$i; done
  sync
  sleep 1
done
stop_killer
echo "  $rounds rounds written; $KILLS kills in all; RestartCount $(ublk_prop fs RestartCount)"
[ "$KILLS" -ge 6 ] || fail "only $KILLS kills hit a live queue daemon"

step "after a remount every file reads back unchanged, and fsck finds no damage"
umount /mnt/r
echo 3 >/proc/sys/vm/drop_caches
fsck.ext4 -n -f "$dev" || fail "fsck found damage"
mount "$dev" /mnt/r
for round in $(seq $rounds); do
  # Byte for byte (cmp: a fraction of sha256sum's time under the emulator).
  cat /mnt/r/r$round-f{1..8} | cmp -s - /var/tmp/src/all || fail "round $round differs"
done
umount /mnt/r
expect_no_io_errors
[ "$(ublk_prop fs RestartCount)" = "$KILLS" ] || fail "RestartCount $(ublk_prop fs RestartCount), expected $KILLS"
[ "$(ublk_prop fs DataPath)" = "$want_path" ] || fail "DataPath after recovery $(ublk_prop fs DataPath), expected $want_path"
echo "  data path $want_path ($(uname -r))"
ublkctl delete fs
expect_no_devices
pass
