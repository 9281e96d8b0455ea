#!/bin/bash
# Description: loop devices on a disk with 4 KiB logical sectors. Over a file on ext4 there, the
# device gets O_DIRECT and a 4 KiB logical block (the file's STATX_DIOALIGN), takes a partition
# table the kernel scans, ext4 on one partition and fio verify on the other, with no I/O error;
# a smaller block size with direct_io is refused by name. The disk itself serves as backing too.
source "$(dirname "$0")/../lib.sh"

disk=$(scratch_disk)
[ "$(<"/sys/block/${disk#/dev/}/queue/logical_block_size")" = 4096 ] || fail "$disk has no 4 KiB sectors"
io_errors() { dmesg | grep -cE 'I/O error|critical medium error|unable to read' || true; }
errors_before=$(io_errors)

step "a 256 MiB file on ext4 on $disk"
mkfs.ext4 -q -F "$disk"
mkdir -p /mnt/disk4k
mount "$disk" /mnt/disk4k
defer "umount /mnt/disk4k 2>/dev/null"
truncate -s 256M /mnt/disk4k/backing.img
defer rm -f /mnt/disk4k/backing.img

step "the loop device over it is O_DIRECT with 4 KiB blocks"
serve_device '{"target":"loop","path":"/mnt/disk4k/backing.img"}'
sysfs=/sys/block/${UBLK_DEV#/dev/}/queue
[ "$(<$sysfs/logical_block_size)" = 4096 ] || fail "logical block $(<$sysfs/logical_block_size), expected 4096"

step "a partition table, scanned by the kernel"
printf 'label: gpt\n,128MiB\n,\n' | sfdisk -q "$UBLK_DEV"
wait_until 10 test -b "${UBLK_DEV}p2" || fail "no ${UBLK_DEV}p2 after the partition table was written"

step "ext4 on partition 1: written, remounted, read back"
mkfs.ext4 -q "${UBLK_DEV}p1"
mkdir -p /mnt/part1
mount "${UBLK_DEV}p1" /mnt/part1
defer "umount /mnt/part1 2>/dev/null"
head -c 16M /dev/urandom >/var/tmp/pattern
defer rm -f /var/tmp/pattern
cp /var/tmp/pattern /mnt/part1/data
umount /mnt/part1
mount "${UBLK_DEV}p1" /mnt/part1
cmp /var/tmp/pattern /mnt/part1/data || fail "the file on partition 1 changed across a remount"
umount /mnt/part1

step "fio verify on partition 2, 4 KiB and 64 KiB"
fio_verify "${UBLK_DEV}p2" --size=32M --name=small --bs=4k --name=large --stonewall --bs=64k
stop_device

step "block_size 512 with direct_io true is refused, naming the field"
echo '{"target":"loop","path":"/mnt/disk4k/backing.img","block_size":512,"direct_io":true}' >/var/tmp/spec.json
rc=0
ublkd serve --spec /var/tmp/spec.json >/dev/null 2>/var/tmp/err || rc=$?
[ "$rc" -eq 2 ] || fail "exit $rc, expected 2: $(cat /var/tmp/err)"
grep -q '/block_size: 512 is smaller than the O_DIRECT alignment' /var/tmp/err || fail "$(cat /var/tmp/err)"
[ -z "$(ublk_devices)" ] || fail "a device was left: $(ublk_devices)"

step "the disk itself as backing"
umount /mnt/disk4k
serve_device "{\"target\":\"loop\",\"path\":\"$disk\",\"size\":\"64M\"}"
[ "$(<"/sys/block/${UBLK_DEV#/dev/}/queue/logical_block_size")" = 4096 ] || fail "logical block is not 4096"
fio_verify "$UBLK_DEV" --size=64M
stop_device

[ "$(io_errors)" = "$errors_before" ] || fail "I/O errors in the kernel log: $(dmesg | grep -E 'I/O error|unable to read' | tail -n 5)"
pass
