#!/bin/bash
# Description: the guest is clean and serves: no ublk or loop device, no queue daemon and no mount
# left by an earlier test in this boot, and a new null device takes I/O. Runs after each
# deliberately broken test (tests/vm/expect-failure) to show the boot goes on unharmed.
source "$(dirname "$0")/../lib.sh"

step "nothing from an earlier test is left"
expect_no_devices
[ -z "$(losetup -n -O NAME)" ] || fail "loop devices left: $(losetup -a)"
! grep -qE ' /mnt/ublkvm|^/dev/ublkb' /proc/mounts || fail "mounts left: $(grep -E ' /mnt/ublkvm|^/dev/ublkb' /proc/mounts)"

step "a new device serves I/O"
serve_device '{"target":"null","size":"256M"}'
fio --name=clean --filename="$UBLK_DEV" --ioengine=io_uring --direct=1 --rw=randrw --bs=4k --iodepth=8 \
  --size=16M --output=/dev/null || fail "fio on $UBLK_DEV failed"
stop_device
pass
