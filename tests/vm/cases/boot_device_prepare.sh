#!/bin/bash
# Description: the first boot of tests/vm/boot-devices. Makes ext4 with 4 MiB of random data on a
# ublk loop device over the persistent disk and records the data's sha256. For the next boot's /etc
# it leaves in /ublkvm-carry/root (the initramfs copies it into /): ublk.d/bootdisk.json with
# "boot": true, ublk.d/badboot.json whose "boot" is a string, and an fstab line for
# /dev/ublk/by-name/bootdisk. This boot's own /etc is left as it was.
source "$(dirname "$0")/../lib.sh"

[ -d /ublkvm-carry ] || skip "nothing carried to the next boot (tests/vm/run --carry): run tests/vm/boot-devices"
persist_disk >/dev/null
backing=/dev/disk/by-id/virtio-ublkvm-persist
udevadm settle --timeout=10 || true
[ -b "$backing" ] || fail "udev made no $backing"
etc=/ublkvm-carry/root/etc
mkdir -p "$etc/ublk.d"
echo "{\"target\": \"loop\", \"path\": \"$backing\", \"boot\": true}" >"$etc/ublk.d/bootdisk.json"

step "ext4 with 4 MiB of random data on ublk device bootdisk over $backing"
ublkctl create bootdisk --spec "$etc/ublk.d/bootdisk.json" >/dev/null
defer ublkctl delete bootdisk --wait 10
wait_for_link bootdisk
mkfs.ext4 -q /dev/ublk/by-name/bootdisk
mkdir -p /mnt/bootdisk
mount /dev/ublk/by-name/bootdisk /mnt/bootdisk
defer umount /mnt/bootdisk
head -c 4M /dev/urandom >/mnt/bootdisk/data
(cd /mnt/bootdisk && sha256sum data) >/ublkvm-carry/expected
umount /mnt/bootdisk
mount -o ro /dev/ublk/by-name/bootdisk /mnt/bootdisk
(cd /mnt/bootdisk && sha256sum --quiet -c /ublkvm-carry/expected) || fail "the data read back after a remount differs"

step "for the next boot: the specs and the fstab line (_netdev: mounted after the bus and ublkd are up)"
echo '{"target": "null", "size": "1M", "boot": "yes"}' >"$etc/ublk.d/badboot.json"
{
  cat /etc/fstab
  echo "/dev/ublk/by-name/bootdisk /mnt/bootdisk ext4 _netdev 0 2"
} >"$etc/fstab"
pass
