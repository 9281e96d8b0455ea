#!/bin/bash
# Description: DISCARD and WRITE_ZEROES reach the backing file: both ranges read back as zeros
# through the device and in the file, and discard frees the file's blocks.
source "$(dirname "$0")/../lib.sh"

backing=$(scratch_file 64M)
dd if=/dev/urandom of="$backing" bs=1M count=64 conv=notrunc status=none
serve_device "{\"target\":\"loop\",\"path\":\"$backing\"}"
zeros_at() { cmp -n "$2" -i "$1:0" "$3" /dev/zero >/dev/null; }

step "discard 8 MiB at 16 MiB"
blocks_before=$(stat -c %b "$backing")
blkdiscard -o $((16 << 20)) -l $((8 << 20)) "$UBLK_DEV"
zeros_at $((16 << 20)) $((8 << 20)) "$UBLK_DEV" || fail "discarded range does not read as zeros on the device"
zeros_at $((16 << 20)) $((8 << 20)) "$backing" || fail "discarded range is not zero in the backing file"
blocks_after=$(stat -c %b "$backing")
[ $((blocks_before - blocks_after)) -ge $((8 << 20 >> 9)) ] ||
  fail "discard freed $(((blocks_before - blocks_after) / 2)) KiB of the backing file, expected 8 MiB"

step "write zeroes over 4 MiB at 40 MiB"
blkdiscard -z -o $((40 << 20)) -l $((4 << 20)) "$UBLK_DEV"
zeros_at $((40 << 20)) $((4 << 20)) "$UBLK_DEV" || fail "zeroed range does not read as zeros on the device"
zeros_at $((40 << 20)) $((4 << 20)) "$backing" || fail "zeroed range is not zero in the backing file"

step "data around the ranges is untouched"
cmp -n $((16 << 20)) "$UBLK_DEV" "$backing" || fail "data before the discard changed"
pass
