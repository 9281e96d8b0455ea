#!/bin/bash
# Description: DISCARD and WRITE_ZEROES reach the backing store and read back as zeros, over a
# file on tmpfs, a block device that discards, one that does not, and a file on vfat (no hole
# punching: WRITE_ZEROES falls back to written zeros). A backing without discard advertises none.
source "$(dirname "$0")/../lib.sh"

zeros_at() { cmp -n "$2" -i "$1:0" "$3" /dev/zero >/dev/null; }
discard_max() { cat "/sys/block/${UBLK_DEV#/dev/}/queue/discard_max_bytes"; }

# fill_and_serve BACKING [SPEC_EXTRA]: random data over the first 48 MiB, then a loop device on it.
fill_and_serve() {
  dd if=/dev/urandom of="$1" bs=1M count=48 conv=notrunc,fsync status=none
  serve_device "{\"target\":\"loop\",\"path\":\"$1\"${2:-}}"
}

# expect_write_zeroes BACKING: 4 MiB at 40 MiB read as zeros on the device and in the backing,
# with and without NOUNMAP; the data before them is untouched.
expect_write_zeroes() {
  blkdiscard -z -o $((40 << 20)) -l $((2 << 20)) "$UBLK_DEV"
  fallocate --zero-range -o $((42 << 20)) -l $((2 << 20)) "$UBLK_DEV" 2>/dev/null ||
    blkdiscard -z -o $((42 << 20)) -l $((2 << 20)) "$UBLK_DEV"
  zeros_at $((40 << 20)) $((4 << 20)) "$UBLK_DEV" || fail "zeroed range does not read as zeros on the device"
  zeros_at $((40 << 20)) $((4 << 20)) "$1" || fail "zeroed range is not zero in $1"
  cmp -n $((16 << 20)) "$UBLK_DEV" "$1" || fail "data before the zeroed range changed"
}

step "a file on tmpfs: discard frees its blocks"
backing=$(scratch_file 64M)
fill_and_serve "$backing"
[ "$(discard_max)" -gt 0 ] || fail "no discard advertised over tmpfs"
blocks_before=$(stat -c %b "$backing")
blkdiscard -o $((16 << 20)) -l $((8 << 20)) "$UBLK_DEV"
zeros_at $((16 << 20)) $((8 << 20)) "$UBLK_DEV" || fail "discarded range does not read as zeros on the device"
zeros_at $((16 << 20)) $((8 << 20)) "$backing" || fail "discarded range is not zero in the backing file"
blocks_after=$(stat -c %b "$backing")
[ $((blocks_before - blocks_after)) -ge $((8 << 20 >> 9)) ] ||
  fail "discard freed $(((blocks_before - blocks_after) / 2)) KiB of the backing file, expected 8 MiB"
expect_write_zeroes "$backing"
stop_device

step "a block device that discards (null_blk, discard on): the queue thread's async discard"
null_blk_device ublkvm-discard 64 4096 1
fill_and_serve "$NULLB_DEV"
[ "$(discard_max)" -gt 0 ] || fail "no discard advertised over $NULLB_DEV"
blkdiscard -o $((16 << 20)) -l $((8 << 20)) "$UBLK_DEV"
zeros_at $((16 << 20)) $((8 << 20)) "$NULLB_DEV" || fail "discard did not reach $NULLB_DEV"
expect_write_zeroes "$NULLB_DEV"
stop_device

step "a block device without discard: none advertised, write zeroes still works"
null_blk_device ublkvm-nodiscard 64 512 0
fill_and_serve "$NULLB_DEV"
[ "$(discard_max)" = 0 ] || fail "discard advertised over $NULLB_DEV, which cannot discard"
! blkdiscard -o 0 -l 1M "$UBLK_DEV" 2>/dev/null || fail "blkdiscard succeeded on a device without discard"
expect_write_zeroes "$NULLB_DEV"
stop_device

step "a file on vfat (no hole punching): no discard, write zeroes as written zeros"
image=$(scratch_file 128M)
mkfs.vfat -n UBLKVM "$image" >/dev/null
mkdir -p /mnt/vfat
mount -o loop "$image" /mnt/vfat
defer "umount /mnt/vfat"
truncate -s 64M /mnt/vfat/backing.img
defer "rm -f /mnt/vfat/backing.img"
fill_and_serve /mnt/vfat/backing.img ',"direct_io":false'
[ "$(discard_max)" = 0 ] || fail "discard advertised over vfat, which cannot punch holes"
expect_write_zeroes /mnt/vfat/backing.img
stop_device
pass
