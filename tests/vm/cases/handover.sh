#!/bin/bash
# Description: planned handover. With UBLK_F_QUIESCE (Linux 6.16+), `ublkctl restart` replaces the
# queue daemon ten times under fio with verify, with no I/O error; RestartCount counts them and
# LastExitReason says "handed over". Without QUIESCE it is refused (exit 7) and changes nothing,
# and the test skips (exit 4): the handover itself did not run.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk
truncate -s 128M /var/lib/ublk/h.img
echo '{"target":"loop","path":"/var/lib/ublk/h.img"}' >/var/lib/ublk/h.json
defer rm -f /var/lib/ublk/h.img /var/lib/ublk/h.json
dev=$(ublkctl create h --spec /var/lib/ublk/h.json)
defer ublkctl delete h --missing-ok
pid=$(pgrep -f 'ublkd serve --spec /run/ublkd/devices/h.spec.json')

if ! ublkctl features | grep -qw QUIESCE; then
  step "no QUIESCE in this kernel: restart is refused as unsupported, and the device is untouched"
  rc=0
  ublkctl restart h 2>/var/tmp/restart.err || rc=$?
  [ "$rc" = 7 ] || fail "ublkctl restart exited $rc, expected 7: $(cat /var/tmp/restart.err)"
  grep -q 'QUIESCE' /var/tmp/restart.err || fail "the error does not name QUIESCE: $(cat /var/tmp/restart.err)"
  [ "$(ublk_state h)" = live ] && [ "$(pgrep -f 'ublkd serve --spec /run/ublkd/devices/h.spec.json')" = "$pid" ] ||
    fail "the refused restart changed the device"
  fio_verify "$dev" --size=32M
  ublkctl delete h
  expect_no_devices
  # The refusal is checked, but the handover itself could not run here: that is a skip, not a pass.
  skip "no QUIESCE in $(uname -r): the refusal checked, the ten handovers not run"
fi

step "ten planned restarts under fio randwrite with verify"
start_verifier "$dev"
expect_io_flows "$dev"
for i in $(seq 10); do
  ublkctl restart h || fail "restart $i failed"
  [ "$(ublk_state h)" = live ] || fail "h is $(ublk_state h) after restart $i"
  expect_io_flows "$dev"
done
stop_verifier
[ "$(ublk_prop h RestartCount)" = 10 ] || fail "RestartCount $(ublk_prop h RestartCount), expected 10"
[ "$(ublk_prop h LastExitReason)" = "handed over" ] || fail "LastExitReason: $(ublk_prop h LastExitReason)"
[ "$(pgrep -f 'ublkd serve --spec /run/ublkd/devices/h.spec.json')" != "$pid" ] || fail "the daemon is the old one"
expect_no_io_errors

step "restart of a device that is not there, and by a non-root caller"
rc=0; ublkctl restart nosuch 2>/dev/null || rc=$?
[ "$rc" = 4 ] || fail "restart of a missing device exited $rc, expected 4"
rc=0; setpriv --reuid=65534 --regid=65534 --clear-groups ublkctl restart h 2>/dev/null || rc=$?
[ "$rc" = 8 ] || fail "a non-root restart exited $rc, expected 8"
ublkctl delete h
expect_no_devices
pass
