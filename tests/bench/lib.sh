# What the guest benchmarks share (sourced after tests/vm/lib.sh).

# set_none DEV: the block device's I/O scheduler is none (as for every device measured).
set_none() { echo none >"/sys/block/$(basename "$1")/queue/scheduler"; }

# disk_backing: a 512M file of random data (no unwritten extents) on ext4 on the guest's scratch
# virtio disk, and the kernel's loop over it with direct I/O and 4 KiB sectors; sets BACKING and
# LOOPDEV. The disk is cache=none on the host when tests/bench/run boots the guest.
disk_backing() {
  local disk
  disk=$(scratch_disk)
  mkfs.ext4 -q -F "$disk"
  mkdir -p /mnt/bench
  mount "$disk" /mnt/bench
  defer "umount /mnt/bench"
  BACKING=/mnt/bench/backing.img
  dd if=/dev/urandom of="$BACKING" bs=1M count=512 oflag=direct status=none
  set_none "$disk"
  LOOPDEV=$(losetup --find --show --direct-io=on --sector-size 4096 "$BACKING")
  defer losetup -d "$LOOPDEV"
  [ "$(cat "/sys/block/$(basename "$LOOPDEV")/loop/dio")" = 1 ] || fail "kernel loop did not get direct I/O"
  set_none "$LOOPDEV"
}
