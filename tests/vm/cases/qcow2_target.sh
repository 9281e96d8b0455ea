#!/bin/bash
# Description: the qcow2 target under the installed ublkd unit: a qcow2 overlay on a backing file
# serves the backing's data, takes fio verify writes and an 8 MiB file that `qemu-img convert`
# reads back identical; discard reaches the image (qemu-img map); the image is never opened twice
# for writing (a second device and qemu-io are refused); qemu-storage-daemon SIGKILLed, and the
# queue daemon SIGKILLed, under fio: no error. ext4 survives a device re-created on its image.
# qemu-img check is clean after each part.
source "$(dirname "$0")/../lib.sh"

dir=/var/lib/ublk
mkdir -p "$dir"
defer rm -f "$dir/base.qcow2" "$dir/top.qcow2" "$dir/fs.qcow2" /var/tmp/data /var/tmp/out.raw /var/tmp/second.json

step "a qcow2 overlay on a backing file: the backing's data shows through"
qemu-img create -q -f qcow2 "$dir/base.qcow2" 128M
qemu-io -f qcow2 -c "write -P 0xab 0 1M" "$dir/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$dir/base.qcow2" -F qcow2 "$dir/top.qcow2"
create_device top "{\"target\":\"qcow2\",\"path\":\"$dir/top.qcow2\",\"queues\":2}"
journal -u ublkd | grep -q "confined to it by Landlock" || fail "qemu-storage-daemon is not confined: $(journal -u ublkd | tail -n 5)"
cmp -n 1M "$DEV" <(head -c 1M /dev/zero | tr '\0' '\253') || fail "the backing file's data does not show through"

step "the image is never opened twice for writing"
out=$(qemu-io -f qcow2 -c "write 0 512" "$dir/top.qcow2" 2>&1) && fail "qemu-io wrote to the image in use: $out"
expect_contains "$out" lock
echo "{\"target\":\"qcow2\",\"path\":\"$dir/top.qcow2\"}" >/var/tmp/second.json
out=$(ublkctl create second --spec /var/tmp/second.json 2>&1) && fail "a second device opened the image"
expect_contains "$out" "in use"
[ "$(ublkctl list --json | jq length)" = 1 ] || fail "the refused device was left behind"

step "fio verify; qemu-storage-daemon SIGKILLed under fio, then the queue daemon: no error"
start_verifier "$DEV" 16M
wait_until 60 test -s /var/tmp/verifier.result || fail "no fio pass finished"
pkill -KILL -f "qemu-storage-daemon.*$dir/top.qcow2" || fail "no qemu-storage-daemon to kill"
wait_until 60 eval '[ "$(cut -d" " -f1 /var/tmp/verifier.result)" -ge 2 ]' || fail "fio stalled after the kill"
kill_queue_daemon top
wait_until 60 prop_is top RestartCount 1 || fail "not recovered: $(journal DEVICE=top | tail -n 5)"
wait_until 60 eval '[ "$(cut -d" " -f1 /var/tmp/verifier.result)" -ge 3 ]' || fail "fio stalled after the recovery"
stop_verifier
expect_no_io_errors
journal -u ublkd | grep -q "starting it again" || fail "qemu-storage-daemon was not restarted"

step "data written through ublkd reads back from the image with qemu-img convert; discard reaches it"
head -c 8M /dev/urandom >/var/tmp/data
dd if=/var/tmp/data of="$DEV" bs=1M seek=96 oflag=direct status=none
dd if=/dev/urandom of="$DEV" bs=1M seek=64 count=16 oflag=direct status=none
blkdiscard --offset $((64 << 20)) --length $((16 << 20)) "$DEV"
ublkctl delete top
qemu-img check -q "$dir/top.qcow2" || fail "qemu-img check found errors"
qemu-img convert -f qcow2 -O raw "$dir/top.qcow2" /var/tmp/out.raw
# fio wrote over the first MiB too: in the overlay, never in its backing file.
qemu-img check -q "$dir/base.qcow2" || fail "qemu-img check of the backing file found errors"
qemu-io -f qcow2 -r -c "read -P 0xab 0 1M" "$dir/base.qcow2" >/dev/null || fail "the backing file changed"
cmp -i $((96 << 20)):0 -n $((8 << 20)) /var/tmp/out.raw /var/tmp/data || fail "the data read back differs"
qemu-img map --output=json "$dir/top.qcow2" |
  jq -e "[.[] | select(.start < $((80 << 20)) and .start + .length > $((64 << 20)) and .data and .depth == 0)] | length == 0" \
    >/dev/null || fail "the discarded range still holds data: $(qemu-img map "$dir/top.qcow2")"

step "ext4 on a qcow2, across a device re-created on the image"
qemu-img create -q -f qcow2 "$dir/fs.qcow2" 256M
create_device fs "{\"target\":\"qcow2\",\"path\":\"$dir/fs.qcow2\"}"
fs_fill "$DEV"
ublkctl delete fs
qemu-img check -q "$dir/fs.qcow2" || fail "qemu-img check found errors"
create_device fs "{\"target\":\"qcow2\",\"path\":\"$dir/fs.qcow2\"}"
fs_check "$DEV"
ublkctl delete fs
qemu-img check -q "$dir/fs.qcow2" || fail "qemu-img check found errors"
expect_no_io_errors
pass
