#!/bin/bash
# Description: `systemctl start ublk@disk0` with /etc/ublk.d/disk0.json brings the device up with
# its /dev/ublk/by-name link; mkfs, mount and checksums across a remount; stop removes it.
source "$(dirname "$0")/../lib.sh"

step "a spec in /etc/ublk.d"
mkdir -p /var/lib/ublk /etc/ublk.d
truncate -s 512M /var/lib/ublk/disk0.img
defer rm -f /var/lib/ublk/disk0.img
sed 's/"queues": 2/"queues": 1/' "$UBLKD_SOURCE/config/examples/loop-file.json" >/etc/ublk.d/disk0.json
defer rm -f /etc/ublk.d/disk0.json

step "systemctl start ublk@disk0"
systemctl start ublk@disk0
defer systemctl stop ublk@disk0
systemctl is-active --quiet ublk@disk0 || fail "ublk@disk0 is not active"
wait_for_link disk0
dev=$(readlink -f /dev/ublk/by-name/disk0)
echo "  /dev/ublk/by-name/disk0 -> $dev"
[ -b "$dev" ] || fail "$dev is not a block device"

step "mkfs, mount, write, remount, checksums"
mkfs.ext4 -q /dev/ublk/by-name/disk0
mkdir -p /mnt/disk0
mount /dev/ublk/by-name/disk0 /mnt/disk0
for i in 1 2 3; do head -c 8M /dev/urandom >"/mnt/disk0/file$i"; done
(cd /mnt/disk0 && sha256sum file*) >/var/tmp/sums
sync
umount /mnt/disk0
mount /dev/ublk/by-name/disk0 /mnt/disk0
(cd /mnt/disk0 && sha256sum -c --quiet /var/tmp/sums) || fail "checksums differ after remount"

step "a mounted device is not deleted: ublkctl delete says busy"
rc=0
ublkctl delete disk0 || rc=$?
[ "$rc" -eq 6 ] || fail "ublkctl delete of a mounted device exited $rc, expected 6 (busy)"
umount /mnt/disk0

step "systemctl stop ublk@disk0 removes the device"
systemctl stop ublk@disk0
[ ! -e /dev/ublk/by-name/disk0 ] || udevadm settle
[ ! -e "$dev" ] || fail "$dev still exists"
! ublkctl status disk0 >/dev/null 2>&1 || fail "ublkctl still knows disk0"
expect_no_devices
pass
