#!/bin/bash
# Description: what scripts/demo shows, end to end under systemd: a config from config/examples,
# `systemctl start ublk@disk0`, mkfs, mount, a file written and read back, then stop.
source "$(dirname "$0")/lib.sh"

step "guest kernel $(uname -r); ublkd sees these ublk features"
ublkd features
step "/etc/ublk.d/disk0.json, from config/examples/loop-file.json"
mkdir -p /var/lib/ublk /etc/ublk.d /mnt/disk0
truncate -s 256M /var/lib/ublk/disk0.img
cp "$UBLKD_SOURCE/config/examples/loop-file.json" /etc/ublk.d/disk0.json
defer rm -f /var/lib/ublk/disk0.img /etc/ublk.d/disk0.json
cat /etc/ublk.d/disk0.json
step "systemctl start ublk@disk0"
systemctl start ublk@disk0
defer "systemctl stop ublk@disk0"
wait_for_link disk0
systemctl status --no-pager ublk@disk0 | head -n 5
ublkctl list
step "mkfs.ext4, mount, write a file, read it back"
mkfs.ext4 -q /dev/ublk/by-name/disk0
mount /dev/ublk/by-name/disk0 /mnt/disk0
defer "umount /mnt/disk0 2>/dev/null || true"
head -c 16M /dev/urandom >/var/tmp/file
cp /var/tmp/file /mnt/disk0/file
umount /mnt/disk0
mount /dev/ublk/by-name/disk0 /mnt/disk0
cmp /var/tmp/file /mnt/disk0/file || fail "the file read back differs"
echo "  16 MiB file written, remounted, read back identical"
df -h /mnt/disk0 | tail -n 1
umount /mnt/disk0
step "systemctl stop ublk@disk0"
systemctl stop ublk@disk0
ublkctl list
expect_no_devices
pass
