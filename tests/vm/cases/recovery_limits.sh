#!/bin/bash
# Description: where recovery stops. A crash loop (crash_loop deaths within seconds), a backing
# file that vanished while ublkd was down, and daemons that die as soon as they start (after a
# doubling backoff) all end in the failed state, with I/O failing rather than hanging; a failed
# device keeps its bus object (saying why) and stays failed across a ublkd restart, and can
# still be deleted. DeleteDevice while a daemon is recovering does not hang. A device with recovery "none" is removed when its daemon
# dies, I/O fails at once, and DeviceRemoved says why.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk
echo '{"target":"null","size":"64M"}' >/var/lib/ublk/null.json
defer rm -f /var/lib/ublk/null.json
cp /etc/ublk/ublkd.json /var/tmp/ublkd.json.orig
defer cp /var/tmp/ublkd.json.orig /etc/ublk/ublkd.json
echo '{"autostart": false, "crash_loop": {"deaths": 3, "within_seconds": 60}}' >/etc/ublk/ublkd.json
systemctl restart ublkd

# reader_until_error DEV: reads DEV in a loop in the background until a read fails; sets READER.
reader_until_error() {
  (while dd if="$1" of=/dev/null bs=4k count=256 iflag=direct status=none; do :; done) &
  READER=$!
  defer "kill $READER 2>/dev/null || true"
}

step "crash loop: 3 deaths within 60 s leave the device failed; a reader gets errors, not a hang"
dev=$(ublkctl create c --spec /var/lib/ublk/null.json)
reader_until_error "$dev"
for i in 1 2 3; do
  wait_until 30 state_is c live || fail "c is $(ublk_state c) before kill $i"
  kill_queue_daemon c
done
wait_until 30 state_is c failed || fail "c is $(ublk_state c) after 3 deaths"
journal DEVICE=c | grep -q 'crash loop: 3 queue daemon deaths within 60 s' ||
  fail "the journal does not report the crash loop"
wait_until 10 process_gone $READER || fail "the reader of $dev still hangs"
[ ! -e "$dev" ] || fail "$dev outlived the failure"
# failed_object: the failed device keeps its object, which says why through GetDetails.
failed_object() {
  [ "$(busctl get-property org.ublk.Manager /org/ublk/Device/c org.ublk.Device State)" = 's "failed"' ] ||
    fail "the object of c: $(busctl introspect org.ublk.Manager /org/ublk/Device/c 2>&1 | head -n 3)"
  [ "$(busctl get-property org.ublk.Manager /org/ublk/Device/c org.ublk.Device Id)" = "u 4294967295" ] ||
    fail "a failed device has no kernel id: $(busctl get-property org.ublk.Manager /org/ublk/Device/c org.ublk.Device Id)"
  busctl --json=short call org.ublk.Manager /org/ublk/Device/c org.ublk.Device GetDetails |
    jq -r .data[0].error.data | grep -q "crash loop" || fail "GetDetails of c does not say why it failed"
}
failed_object
systemctl restart ublkd
state_is c failed || fail "after a ublkd restart, c is '$(ublk_state c)', not failed"
failed_object
ublkctl delete c || fail "cannot delete the failed device"
! busctl get-property org.ublk.Manager /org/ublk/Device/c org.ublk.Device State 2>/dev/null ||
  fail "the object of c outlived its deletion"
expect_no_devices
cp /var/tmp/ublkd.json.orig /etc/ublk/ublkd.json # the default limit, 10 deaths within 10 s
systemctl restart ublkd

step "the backing file vanished while ublkd was down: the device ends failed, saying why, and can be deleted"
# While ublkd runs it holds the open file, so a recovery serves it even after a rename; a ublkd
# started afresh must open the path again.
truncate -s 64M /var/lib/ublk/gone.img
echo '{"target":"loop","path":"/var/lib/ublk/gone.img"}' >/var/lib/ublk/gone.json
defer rm -f /var/lib/ublk/gone.img /var/lib/ublk/gone.json /var/lib/ublk/gone.img.moved
ublkctl create gone --spec /var/lib/ublk/gone.json
systemctl stop ublkd
mv /var/lib/ublk/gone.img /var/lib/ublk/gone.img.moved
kill_queue_daemon gone
wait_until 30 state_is gone failed || fail "gone is $(ublk_state gone)"
journal DEVICE=gone | grep -q 'cannot open /var/lib/ublk/gone.img: No such file or directory' ||
  fail "the journal does not say why the recovery failed: $(journal DEVICE=gone)"
ublkctl delete gone
expect_no_devices

step "daemons that die as soon as they start: recovery backs off (0.25 s doubling to 4 s), then ends failed"
dev=$(ublkctl create q --spec /var/lib/ublk/null.json)
start=$SECONDS
kill_until_failed q
kills=$KILLS
state_is q failed || fail "q is $(ublk_state q) after $kills kills in 60 s"
elapsed=$((SECONDS - start))
echo "  failed after $kills queue daemons in $elapsed s"
[ "$elapsed" -ge 7 ] || fail "q failed after $elapsed s: recovery did not back off"
[ "$kills" -le 8 ] || fail "$kills queue daemons started: recovery looped"
journal DEVICE=q | grep -q "recovering $dev in 4.00 s" || fail "no 4 s backoff in the journal: $(journal DEVICE=q)"
journal DEVICE=q | grep -q '6 queue daemons in a row died before serving' || fail "no reason in the journal"
ublkctl delete q
expect_no_devices

step "DeleteDevice while a recovering daemon is stuck does not hang"
dev=$(ublkctl create d --spec /var/lib/ublk/null.json)
# Another process holds the daemon's /dev/ublkcN (a copy taken with pidfd_getfd), so after the
# daemon dies the device never becomes recoverable and its successor waits.
pid=$(pgrep -f 'ublkd serve --spec /run/ublkd/devices/d.spec.json')
python3 - "$pid" >/var/tmp/holder.out 2>&1 <<'PY' &
import ctypes, os, sys, time
pid = int(sys.argv[1])
fd = next(int(f) for f in os.listdir(f"/proc/{pid}/fd") if os.readlink(f"/proc/{pid}/fd/{f}").startswith("/dev/ublkc"))
held = ctypes.CDLL(None, use_errno=True).syscall(438, os.pidfd_open(pid), fd, 0)  # pidfd_getfd
print("held" if held >= 0 else f"pidfd_getfd: {os.strerror(ctypes.get_errno())}", flush=True)
time.sleep(600)
PY
holder=$!
defer "kill $holder 2>/dev/null || true"
wait_until 10 grep -q held /var/tmp/holder.out || fail "cannot hold /dev/ublkc: $(cat /var/tmp/holder.out)"
kill_queue_daemon d
sleep 3
[ "$(ublk_state d)" = recovering ] || fail "d is $(ublk_state d), expected recovering"
start=$SECONDS
timeout 30 ublkctl delete d || fail "DeleteDevice during recovery failed or hung (exit $?)"
echo "  deleted in $((SECONDS - start)) s"
wait_until 10 test ! -e "$dev" || fail "$dev still exists"
kill $holder
expect_no_devices

step "recovery none: the dead daemon's I/O fails at once, the device goes, DeviceRemoved says why"
echo '{"target":"null","size":"64M","recovery":"none"}' >/var/lib/ublk/none.json
defer rm -f /var/lib/ublk/none.json
dbus-monitor --system "type='signal',interface='org.ublk.Manager',member='DeviceRemoved'" >/var/tmp/removed.log &
monitor=$!
defer "kill $monitor 2>/dev/null || true"
dev=$(ublkctl create n --spec /var/lib/ublk/none.json)
reader_until_error "$dev"
sleep 1
start=$SECONDS
kill_queue_daemon n
wait_until 10 process_gone $READER || fail "the reader of $dev still runs 10 s after its daemon died"
echo "  the reader ended $((SECONDS - start)) s after the kill"
wait_until 10 test ! -e "$dev" || fail "$dev still exists"
! ublkctl status n >/dev/null 2>&1 || fail "n is still listed: $(ublkctl status n)"
wait_until 10 grep -q 'killed by SIGKILL' /var/tmp/removed.log || fail "DeviceRemoved: $(cat /var/tmp/removed.log)"
expect_no_devices
pass
