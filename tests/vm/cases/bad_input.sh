#!/bin/bash
# Description: bad CreateDevice input gets the right named error, creates nothing, and leaves
# ublkd serving its other device while fio runs on it: invalid JSON, an unknown key, a missing
# backing file, a duplicate name, absurd sizes/queues/depths, a bad name, a non-root caller, and a
# queue daemon that dies before its device is ready.
source "$(dirname "$0")/../lib.sh"

step "a device with I/O running on it"
mkdir -p /var/lib/ublk
truncate -s 256M /var/lib/ublk/good.img
defer rm -f /var/lib/ublk/good.img
ublk_call CreateDevice string:good 'string:{"target":"loop","path":"/var/lib/ublk/good.img"}' >/dev/null ||
  fail "cannot create the good device"
defer "ublkctl delete good"
good=$(ublkctl status good --json | jq -r .BlockDevice)
fio --name=busy --filename="$good" --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k --iodepth=8 \
  --size=128M --time_based --runtime=60 \
  --output=/var/tmp/busy.out &
fio_pid=$!
defer "kill $fio_pid 2>/dev/null"
before=$(ublk_devices)

step "each bad request is refused with its named error"
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null",'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null","size":"1G","colour":"red"}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"loop","path":"/var/lib/ublk/missing.img"}'
expect_bus_error org.ublk.Error.Exists CreateDevice string:good 'string:{"target":"null","size":"1G"}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null","size":"900P"}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null","size":0}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null","size":"1G","queues":100000}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null","size":"1G","depth":0}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:d1 'string:{"target":"null","size":"1G","depth":1000000}'
expect_bus_error org.ublk.Error.InvalidSpec CreateDevice string:../etc 'string:{"target":"null","size":"1G"}'
expect_bus_error org.ublk.Error.NotFound DeleteDevice string:nosuch

step "the error names the field"
out=$(ublk_call CreateDevice string:d1 'string:{"target":"null","size":"1G","queues":100000}' || true)
expect_contains "$out" /queues

step "a non-root caller is refused (polkit, no rule grants it), naming the action; ublkctl exits 8"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups dbus-send --system --print-reply \
  --dest=org.ublk.Manager /org/ublk/Manager org.ublk.Manager.CreateDevice string:d1 \
  'string:{"target":"null","size":"1G"}' 2>&1) && fail "non-root CreateDevice succeeded"
grep -q "^Error org.ublk.Error.PermissionDenied: .*org.ublk.manage-devices" <<<"$out" ||
  fail "expected PermissionDenied naming org.ublk.manage-devices: $out"
rc=0
setpriv --reuid=nobody --regid=nogroup --clear-groups ublkctl delete good 2>/var/tmp/err || rc=$?
[ "$rc" -eq 8 ] || fail "non-root ublkctl delete exited $rc, expected 8: $(cat /var/tmp/err)"
setpriv --reuid=nobody --regid=nogroup --clear-groups ublkctl list | grep -q good ||
  fail "a non-root user cannot list devices"
[ "$(ublk_state good)" = live ] || fail "good is '$(ublk_state good)' after the refused delete"

step "a queue daemon killed before its device is ready leaves no device behind"
# The scheduler is set after START_DEV: a kyber that takes forever to load holds the daemon there.
echo "install kyber-iosched /bin/sleep 600" >/etc/modprobe.d/ublkvm-slow-kyber.conf
defer rm -f /etc/modprobe.d/ublkvm-slow-kyber.conf
defer "pkill -f 'sleep 600'"
ublk_call CreateDevice string:slow 'string:{"target":"null","size":"1G","scheduler":"kyber"}' >/var/tmp/slow.out &
call=$!
new_device_exists() { [ "$(ublk_devices)" != "$before" ]; }
wait_until 30 new_device_exists || fail "the slow device never reached START_DEV"
pkill -KILL -f 'ublkd serve --spec /run/ublkd/devices/slow.spec.json'
wait "$call" && fail "CreateDevice of a killed daemon succeeded"
grep -q "^Error org.ublk.Error.Failed" /var/tmp/slow.out || fail "expected Failed: $(cat /var/tmp/slow.out)"
echo "  $(cat /var/tmp/slow.out)"
wait_until 10 output_is "$before" ublk_devices || fail "left behind: $(ublk_devices)"

step "nothing was created, and the good device kept serving"
[ "$(ublk_devices)" = "$before" ] || fail "devices changed: $before -> $(ublk_devices)"
[ "$(ublkctl list --json | jq length)" = 1 ] ||
  fail "ublkd lists more than the good device: $(ublkctl list)"
kill -0 "$fio_pid" || fail "fio on the good device stopped before the checks ended: $(cat /var/tmp/busy.out)"
# SIGINT ends fio's time-based run early; its report then says whether any of its I/O failed.
kill -INT "$fio_pid"
wait "$fio_pid" || echo "  fio exited $? on SIGINT"
grep -q "err= 0" /var/tmp/busy.out || fail "fio on the good device reported errors: $(tail -n 20 /var/tmp/busy.out)"
fio_verify "$good" --size=32M
pass
