#!/bin/bash
# Description: a backing store that hangs (device-mapper suspended under a loop device, with a
# write in flight) holds up nothing but itself. ListDevices answers within 1 s all along; another
# device keeps serving fio verify and recovers from a killed queue daemon meanwhile; DeleteDevice
# of the hung one answers within its deadline with org.ublk.Error.Timeout naming what waits.
# Resumed, the hung device finishes its stop and goes, and the data on its backing is intact.
source "$(dirname "$0")/../lib.sh"
dump_state_after 200

disk=$(scratch_disk)
dm=ublkvm-hung
dmsetup create "$dm" --table "0 $((256 << 11)) linear $disk 0"
defer "dmsetup resume $dm 2>/dev/null; dmsetup remove --retry $dm"
backing=$(realpath "/dev/mapper/$dm")
mkdir -p /var/lib/ublk
truncate -s 256M /var/lib/ublk/steady.img
echo "{\"target\":\"loop\",\"path\":\"$backing\"}" >/var/lib/ublk/hung.json
echo '{"target":"loop","path":"/var/lib/ublk/steady.img"}' >/var/lib/ublk/steady.json
defer rm -f /var/lib/ublk/steady.img /var/lib/ublk/hung.json /var/lib/ublk/steady.json

step "two loop devices: hung over $backing (device-mapper), steady over a file"
hung=$(ublkctl create hung --spec /var/lib/ublk/hung.json)
defer "ublkctl delete hung 2>/dev/null"
steady=$(ublkctl create steady --spec /var/lib/ublk/steady.json)
defer "ublkctl delete steady 2>/dev/null"
head -c 8M /dev/urandom >/var/tmp/before
defer rm -f /var/tmp/before
dd if=/var/tmp/before of="$hung" bs=1M oflag=direct status=none

step "suspend the backing under a write in flight"
dmsetup suspend "$dm"
# Should the test fail here on, the backing comes back first, so the cleanup below can finish.
defer "dmsetup resume $dm"
dd if=/dev/urandom of="$hung" bs=64k count=16 seek=1024 oflag=direct status=none &
writer=$!
inflight() { read -r r w <"/sys/block/${hung#/dev/}/inflight" && [ $((r + w)) -gt 0 ]; }
wait_until 10 inflight || fail "no request of the writer reached $hung"

# Each ListDevices, timed, into a file: one line of milliseconds per call, while $1 exists.
time_lists() {
  while [ -e "$1" ]; do
    local t0=$EPOCHREALTIME
    ublk_call ListDevices >/dev/null || echo "ListDevices failed" >>/var/tmp/lists
    echo $(((${EPOCHREALTIME/./} - ${t0/./}) / 1000)) >>/var/tmp/lists
  done
}
: >/var/tmp/lists
touch /var/tmp/listing
defer rm -f /var/tmp/listing /var/tmp/lists
time_lists /var/tmp/listing &
lister=$!

step "meanwhile the steady device serves fio verify, through a killed queue daemon"
fio_verify "$steady" --size=96M --name=a --name=b --stonewall >/var/tmp/fio.log 2>&1 &
fio=$!
expect_io_flows "$steady"
kill_queue_daemon steady
wait_until 30 prop_is steady RestartCount 1 || fail "steady did not recover: $(ublkctl status steady)"
expect_io_flows "$steady"

step "DeleteDevice of the hung device answers Timeout within its deadline (20 s)"
SECONDS=0
out=$(expect_bus_error org.ublk.Error.Timeout DeleteDevice string:hung) || exit 1
took=$SECONDS
echo "$out"
[ "$took" -le 25 ] || fail "DeleteDevice took $took s"
grep -q "has not exited" <<<"$out" || fail "the error does not say what waits: $out"
[ "$(ublk_state hung)" = stopping ] || fail "hung is $(ublk_state hung), expected stopping"
journal -u ublkd | grep -q "waits in the kernel" || fail "ublkd did not say the daemon waits in the kernel"
wait "$fio" || fail "fio verify on the steady device failed: $(tail -n 20 /var/tmp/fio.log)"

rm /var/tmp/listing
wait "$lister"
! grep -q failed /var/tmp/lists || fail "a ListDevices call failed"
calls=$(wc -l </var/tmp/lists)
slowest=$(sort -n /var/tmp/lists | tail -n 1)
echo "  ListDevices: $calls calls during the hang, slowest $slowest ms"
[ "$calls" -ge 20 ] || fail "only $calls ListDevices calls in $took+ s"
[ "$slowest" -lt 1000 ] || fail "a ListDevices call took $slowest ms"

step "resumed, the hung device finishes its stop and goes; its data is intact"
dmsetup resume "$dm"
wait_until 30 eval '! ublkctl status hung >/dev/null 2>&1' || fail "hung is still there: $(ublk_state hung)"
wait_until 10 test ! -e "$hung" || fail "$hung is still there"
wait "$writer" || echo "  the writer ended with $? (its device went away)"
cmp <(dd if="$backing" bs=1M count=8 iflag=direct status=none) /var/tmp/before || fail "the data written before the hang is not on $backing"
ublkctl delete steady
pass
