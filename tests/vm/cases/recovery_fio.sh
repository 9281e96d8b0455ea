#!/bin/bash
# Description: a loop device's queue daemon is SIGKILLed every 2 s for 30 s while fio writes with
# crc32c verify; each time ublkd recovers the device (live -> recovering -> live) and fio sees no
# error and no mismatch. Prints the longest I/O stall (fio's max completion latency).
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk
truncate -s 128M /var/lib/ublk/r.img
defer rm -f /var/lib/ublk/r.img
echo '{"target":"loop","path":"/var/lib/ublk/r.img","queues":2}' >/var/lib/ublk/r.json
defer rm -f /var/lib/ublk/r.json
dev=$(ublkctl create r --spec /var/lib/ublk/r.json)
defer ublkctl delete r --missing-ok

step "SIGKILL the queue daemon every 2 s for 30 s, under fio randwrite with verify"
dbus-monitor --system "type='signal',interface='org.ublk.Manager',member='DeviceStateChanged'" >/var/tmp/states.log &
monitor=$!
defer "kill $monitor 2>/dev/null || true"
start_verifier "$dev"
start_killer r
sleep 30
stop_killer
stop_verifier
echo "  $KILLS kills"
[ "$KILLS" -ge 12 ] || fail "only $KILLS kills hit a live queue daemon in 30 s"

step "every kill was one recovery: RestartCount counts them, the state is live"
wait_until 30 state_is r live || fail "r is $(ublk_state r) after the kills"
[ "$(ublk_prop r RestartCount)" = "$KILLS" ] || fail "RestartCount $(ublk_prop r RestartCount), expected $KILLS"
expect_contains "$(ublk_prop r LastExitReason)" SIGKILL
states=$(grep -o 'string "\(live\|recovering\)"' /var/tmp/states.log | cut -d'"' -f2 | tr '\n' ' ')
[ "$states" = "$(for i in $(seq "$KILLS"); do printf 'recovering live '; done)" ] ||
  fail "DeviceStateChanged went: $states"
journal DEVICE=r | grep -c 'recovered /dev/ublkb' | grep -qx "$KILLS" ||
  fail "the journal does not show $KILLS recoveries"

step "a last verify of the whole device, then delete; nothing is left"
fio_verify "$dev" --bs=64k --iodepth=8 --size=128M
expect_no_io_errors
ublkctl delete r
expect_no_devices
pass
