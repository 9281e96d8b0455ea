#!/bin/bash
# Description: the backing path is resolved once and the open file is what every queue daemon
# serves. A directory, a FIFO, a tty, a mounted block device and a symlink to it are refused with
# InvalidSpec naming the reason, and nothing is created. A symlink swapped after CreateDevice
# changes nothing: the recovered daemon serves the original file; a ublkd that must open the path
# again (restarted while the daemon was dead) finds another file there and fails the device
# rather than serve it.
source "$(dirname "$0")/../lib.sh"

dir=/var/lib/ublk/safety
mkdir -p "$dir"
defer rm -rf "$dir"
nothing_created() {
  [ -z "$(ublk_devices)" ] || fail "a device was created: $(ublk_devices)"
  [ -z "$(ls /run/ublkd/devices/)" ] || fail "ublkd recorded something: $(ls /run/ublkd/devices/)"
}
refused() { # PATH REASON
  local out
  out=$(expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:bad \
    "string:{\"target\":\"loop\",\"path\":\"$1\"}") || exit 1
  echo "$out"
  grep -q -- "/path: .*$2" <<<"$out" || fail "expected '/path: ... $2' for $1: $out"
  nothing_created
}

step "what is not a regular file or a block device is refused unopened"
mkfifo "$dir/fifo"
refused "$dir" "is a directory"
SECONDS=0
refused "$dir/fifo" "is a FIFO"
[ "$SECONDS" -le 2 ] || fail "refusing a FIFO took $SECONDS s"
refused /dev/ttyS0 "is a character device"

step "a mounted block device, and a symlink to it, are refused"
null_blk_device ublkvm-mounted 64 512 0
mkfs.ext4 -q "$NULLB_DEV"
mkdir -p /mnt/mounted
mount "$NULLB_DEV" /mnt/mounted
defer "umount /mnt/mounted"
refused "$NULLB_DEV" "is a block device in use"
ln -s "$NULLB_DEV" "$dir/to-mounted"
refused "$dir/to-mounted" "is a block device in use"

step "a device on a symlink shows the file it resolved to"
head -c 32M /dev/urandom >"$dir/a.img"
head -c 32M /dev/urandom >"$dir/b.img"
cp "$dir/b.img" /var/tmp/b.orig
defer rm -f /var/tmp/b.orig /var/tmp/chunk
ln -s a.img "$dir/link"
ublk_call CreateDevice string:swap "string:{\"target\":\"loop\",\"path\":\"$dir/link\"}" >/dev/null ||
  fail "cannot create a device on $dir/link"
defer "ublkctl delete swap --missing-ok"
[ "$(ublk_prop swap Backing)" = "$dir/a.img" ] || fail "Backing is '$(ublk_prop swap Backing)', expected $dir/a.img"
dev=$(ublk_prop swap BlockDevice)

# write_lands_in_a: 1 MiB of new data written through the device reaches a.img, not b.img.
write_lands_in_a() {
  head -c 1M /dev/urandom >/var/tmp/chunk
  dd if=/var/tmp/chunk of="$dev" bs=1M oflag=direct conv=fsync status=none
  cmp -n 1M /var/tmp/chunk "$dir/a.img" || fail "$1: the write did not reach a.img"
  cmp "$dir/b.img" /var/tmp/b.orig || fail "$1: b.img changed"
}
restarts() { ublk_prop swap RestartCount; }

step "the link now names b.img: a recovered queue daemon still serves a.img"
ln -sfn b.img "$dir/link"
kill_queue_daemon swap
wait_until 30 prop_is swap RestartCount 1 || fail "not recovered: $(ublkctl status swap)"
wait_until 10 state_is swap live || fail "not live after recovery: $(ublkctl status swap)"
write_lands_in_a "after recovery"

step "the queue daemon dies while ublkd is down: the path names another file, so the device fails"
systemctl stop ublkd
kill_queue_daemon swap
ublkctl list >/dev/null  # activates ublkd
wait_until 30 state_is swap failed || fail "swap is '$(ublk_state swap)', expected failed"
journal -u ublkd | grep -q "now names another file" || fail "no reason in the journal"
cmp "$dir/b.img" /var/tmp/b.orig || fail "b.img changed"
ublkctl delete swap
nothing_created
pass
