#!/bin/bash
# Description: FLUSH reaches the backing store. The backing file sits on ext4 on a kernel loop
# device with periodic writeback off, so its writes show on that disk only when ublkd syncs.
source "$(dirname "$0")/../lib.sh"

defer "sysctl -q vm.dirty_writeback_centisecs=$(sysctl -n vm.dirty_writeback_centisecs) vm.dirty_expire_centisecs=$(sysctl -n vm.dirty_expire_centisecs)"
sysctl -q vm.dirty_writeback_centisecs=0 vm.dirty_expire_centisecs=360000
disk=$(scratch_file 256M)
lower=$(losetup --find --show "$disk")
defer losetup -d "$lower"
mkfs.ext4 -q "$lower"
mnt=$(mktemp -d /var/tmp/ublkvm-mnt.XXXXXX)
mount "$lower" "$mnt"
defer "umount $mnt"
truncate -s 64M "$mnt/backing.img"
sync
serve_device "{\"target\":\"loop\",\"path\":\"$mnt/backing.img\",\"direct_io\":false}"
expect_data_path false "$mnt/backing.img"  # through the ring where the kernel lends pages, else the mapping
written() { awk '{ print $7 }' "/sys/block/$(basename "$lower")/stat"; }

step "8 MiB written through the device stays in the backing file's page cache"
before=$(written)
dd if=/dev/urandom of="$UBLK_DEV" bs=1M count=8 oflag=direct status=none
[ $(($(written) - before)) -lt $((8 << 20 >> 9)) ] || skip "writeback ran before the flush; cannot tell flush apart"

step "a flush of the ublk device writes them to the disk below"
sync "$UBLK_DEV"  # fsync of the block device: a FLUSH to ublkd
[ $(($(written) - before)) -ge $((8 << 20 >> 9)) ] || fail "only $(($(written) - before)) sectors reached the disk after flush"
pass
