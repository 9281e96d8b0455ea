#!/bin/bash
# Description: a guest is fit for ublk tests: ublk_drv is loaded, /dev/ublk-control exists,
# GET_FEATURES is answered and decoded, and a kernel loop device passes a fio crc32c round trip.
source "$(dirname "$0")/../lib.sh"

step "ublk_drv is loaded and /dev/ublk-control exists"
expect_module ublk_drv
expect_char_device /dev/ublk-control

step "GET_FEATURES is answered and decoded"
features=$(ublkd features) || fail "ublkd features exited $?"
echo "$features"
expect_contains "$features" CMD_IOCTL_ENCODE
expect_contains "$features" USER_RECOVERY

step "a kernel loop device passes fio verify=crc32c"
backing=$(scratch_file 256M)
loopdev=$(losetup --find --show --direct-io=on "$backing")
defer losetup -d "$loopdev"
fio_verify "$loopdev" --bs=4k --iodepth=32

pass
