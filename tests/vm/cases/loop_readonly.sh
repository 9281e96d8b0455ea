#!/bin/bash
# Description: a read-only ublkd loop device is read-only to the block layer and refuses
# writes, and its backing file is unchanged.
source "$(dirname "$0")/../lib.sh"

backing=$(scratch_file 32M)
dd if=/dev/urandom of="$backing" bs=1M count=32 conv=notrunc status=none
sum=$(sha256sum <"$backing")
serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"read_only\":true}"

step "the block device is read-only"
[ "$(blockdev --getro "$UBLK_DEV")" = 1 ] || fail "$UBLK_DEV is not read-only"

step "writes are refused"
if dd if=/dev/zero of="$UBLK_DEV" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
  fail "a write to the read-only device succeeded"
fi
cmp "$UBLK_DEV" "$backing" || fail "device and backing file differ"
[ "$(sha256sum <"$backing")" = "$sum" ] || fail "the backing file changed"
pass
