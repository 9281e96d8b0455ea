#!/bin/bash
# Description: the rbd target against a real single-node Ceph cluster in the guest (tests/vm/ceph.sh),
# under the installed ublkd unit: a wrong pool, a missing image, a missing ceph.conf and an
# unreachable cluster are named errors that create nothing; fio verify and ext4 on 2 queues; the
# queue daemon SIGKILLed under fio with no error; data written through ublkd reads back with
# `rbd export`; discard frees the image's space; a resize in the cluster is followed (UPDATE_SIZE)
# or reported (kernels without it).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ceph.sh"

start_ceph
rbd create --size 256M rbd/disk0 || fail "cannot create the image"
spec() { echo "{\"target\":\"rbd\",\"ceph_conf\":\"$CEPH_CONF\",\"queues\":2$1}"; }

step "errors: a wrong pool, a missing image, a missing ceph.conf, an unreachable cluster"
# refused SPEC ERROR TEXT: CreateDevice fails with that named error, the message has TEXT, and
# nothing is left behind.
refused() {
  local out
  out=$(expect_bus_error "org.ublk.Error.$2" CreateDevice string:bad "string:$1") || exit 1
  echo "$out"
  grep -qF -- "$3" <<<"$out" || fail "expected '$3' in the error"
  [ "$(ublkctl list --json | jq length)" = 0 ] || fail "the refused device was left behind"
}
defer rm -f /var/tmp/unreachable.conf
refused "$(spec ',"pool":"nopool","image":"disk0"')" BackendUnavailable "/pool: cannot open pool 'nopool'"
refused "$(spec ',"image":"nothere"')" BackendUnavailable "/image: cannot open image 'nothere'"
refused '{"target":"rbd","image":"disk0","ceph_conf":"/var/tmp/none.conf"}' InvalidSpec "/ceph_conf"
printf '[global]\nmon host = 127.0.0.1:1\nauth client required = none\nclient mount timeout = 3\nrados mon op timeout = 3\n' >/var/tmp/unreachable.conf
refused '{"target":"rbd","image":"disk0","ceph_conf":"/var/tmp/unreachable.conf"}' BackendUnavailable \
  "/ceph_conf: cannot connect to Ceph cluster"

step "fio verify and ext4 on 2 queues"
create_device r "$(spec ',"image":"disk0"')"
fio_verify "$DEV" --bsrange=4k-128k --iodepth=16 --size=16M
fs_fill "$DEV"
fs_check "$DEV"

step "the queue daemon SIGKILLed under fio: no error"
start_verifier "$DEV" 8M
wait_until 120 test -s /var/tmp/verifier.result || fail "no fio pass finished"
kill_queue_daemon r
wait_until 60 prop_is r RestartCount 1 || fail "not recovered: $(journal DEVICE=r | tail -n 5)"
# The new queue daemon's writes wait until the cluster lets the dead client's exclusive lock go
# (its watch times out: 30 s by Ceph's default, 5 s in the test cluster).
wait_until 120 eval '[ "$(cut -d" " -f1 /var/tmp/verifier.result)" -ge 2 ]' || fail "fio stalled after the recovery"
stop_verifier
expect_no_io_errors

step "data written through ublkd reads back with rbd export; discard frees space"
head -c 8M /dev/urandom >/var/tmp/data
defer rm -f /var/tmp/data /var/tmp/export.raw
dd if=/var/tmp/data of="$DEV" bs=1M seek=200 oflag=direct status=none
used() { rbd du --format json rbd/disk0 | jq '.images[0].used_size'; }
before=$(used)
blkdiscard "$DEV"
wait_until 30 eval '[ "$(used)" -lt "$before" ]' || fail "discard freed nothing ($before bytes used before, $(used) after)"
dd if=/var/tmp/data of="$DEV" bs=1M seek=200 oflag=direct status=none
sync
rbd export --no-progress rbd/disk0 /var/tmp/export.raw
cmp -i $((200 << 20)):0 -n $((8 << 20)) /var/tmp/export.raw /var/tmp/data || fail "the cluster holds other data"

step "the image resized in the cluster"
rbd resize --size 384M rbd/disk0 || fail "rbd resize failed"
if ublkctl features --json | jq -e '.features | index("UPDATE_SIZE")' >/dev/null; then
  wait_until 30 eval '[ "$(blockdev --getsize64 "$DEV")" = $((384 << 20)) ]' ||
    fail "the device is $(blockdev --getsize64 "$DEV") bytes, not the image's 384M"
else
  wait_until 30 eval 'journal -u ublkd | grep -q "cannot resize a live device"' || fail "the resize was not reported"
  [ "$(blockdev --getsize64 "$DEV")" = $((256 << 20)) ] || fail "the device changed size"
fi
ublkctl delete r
pass
