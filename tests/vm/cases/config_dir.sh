#!/bin/bash
# Description: /etc/ublk.d and /etc/ublk/ublkd.json. An invalid spec fails its ublk@ unit, is in
# the journal and is a D-Bus error, and stops nothing else; autostart brings up every valid spec;
# a queue daemon that dies for good fails its ublk@ unit and its device goes away.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk /etc/ublk.d
truncate -s 64M /var/lib/ublk/a.img /var/lib/ublk/b.img
echo '{"target":"loop","path":"/var/lib/ublk/a.img"}' >/etc/ublk.d/a.json
echo '{"target":"loop","path":"/var/lib/ublk/b.img"}' >/etc/ublk.d/b.json
echo '{"target":"loop","path":"/var/lib/ublk/b.img","queues":"many"}' >/etc/ublk.d/bad.json
defer rm -f /etc/ublk.d/a.json /etc/ublk.d/b.json /etc/ublk.d/bad.json /var/lib/ublk/a.img /var/lib/ublk/b.img

step "autostart: every valid spec comes up with ublkd; the bad one is logged and skipped"
cp /etc/ublk/ublkd.json /var/tmp/ublkd.json.orig
defer cp /var/tmp/ublkd.json.orig /etc/ublk/ublkd.json
echo '{"autostart": true}' >/etc/ublk/ublkd.json
systemctl start ublkd
defer "ublkctl delete a --missing-ok; ublkctl delete b --missing-ok"
both_live() { [ "$(ublk_state a)" = live ] && [ "$(ublk_state b)" = live ]; }
wait_until 20 both_live || true
ublkctl list
[ "$(ublk_state a)" = live ] || fail "a is not live"
[ "$(ublk_state b)" = live ] || fail "b is not live"
! ublkctl status bad >/dev/null 2>&1 || fail "the invalid spec was brought up"
journal CONFIG_FILE=/etc/ublk.d/bad.json | grep -q '/queues' ||
  fail "the journal does not name bad.json and /queues"
ublkctl delete a
ublkctl delete b

step "systemctl start ublk@bad fails; the unit's log carries the D-Bus error naming the field"
systemctl start ublk@bad && fail "ublk@bad started"
systemctl is-failed --quiet ublk@bad || fail "ublk@bad is not failed"
log=$(journal -u ublk@bad)
grep -q 'org.ublk.Error.InvalidSpec' <<<"$log" || fail "no InvalidSpec in ublk@bad's log: $log"
grep -q '/queues' <<<"$log" || fail "the error does not name /queues: $log"
systemctl reset-failed ublk@bad

step "ublk@a keeps serving while another unit fails"
systemctl start ublk@a
defer systemctl stop ublk@a
wait_for_link a
systemctl start ublk@bad || true
fio_verify /dev/ublk/by-name/a --size=16M
systemctl reset-failed ublk@bad

step "a killed queue daemon is recovered: ublk@a stays active and the data stays"
kill_queue_daemon a
wait_until 30 prop_is a RestartCount 1 || fail "a was not recovered: $(ublkctl status a)"
systemctl is-active --quiet ublk@a || fail "ublk@a is $(systemctl is-active ublk@a) after a recovery"
fio_verify /dev/ublk/by-name/a --size=16M

step "a queue daemon that dies for good (recovery none) fails ublk@c and removes its device"
echo '{"target":"loop","path":"/var/lib/ublk/b.img","recovery":"none"}' >/etc/ublk.d/c.json
defer rm -f /etc/ublk.d/c.json
systemctl start ublk@c
wait_for_link c
dev=$(readlink -f /dev/ublk/by-name/c)
kill_queue_daemon c
wait_until 20 systemctl is-failed --quiet ublk@c || true
systemctl is-failed --quiet ublk@c || fail "ublk@c is $(systemctl is-active ublk@c) after its queue daemon died"
wait_until 10 test ! -e "$dev" || true
[ ! -e "$dev" ] || fail "$dev still exists after its queue daemon died"
journal DEVICE=c | grep -q 'killed by SIGKILL' || fail "the journal does not say why c went"
systemctl reset-failed ublk@c

step "a device deleted by hand leaves ublk@a inactive, not failed"
systemctl start ublk@a
wait_for_link a
ublkctl delete a
wait_until 10 output_is inactive systemctl is-active ublk@a || true
systemctl stop ublk@a
! systemctl is-failed --quiet ublk@a || fail "ublk@a failed after a delete by hand"

step "a failed device keeps its name only: the next device may take its kernel id"
echo '{"target":"null","size":"64M"}' >/var/tmp/null.json
truncate -s 64M /var/lib/ublk/x.img
defer rm -f /var/lib/ublk/x.img
echo '{"target":"loop","path":"/var/lib/ublk/x.img"}' >/var/tmp/x.json
ublkctl create x --spec /var/tmp/x.json
defer "ublkctl delete x --missing-ok; ublkctl delete y --missing-ok"
# Every queue daemon of x is killed as soon as it starts: after the backoff, x ends failed.
kill_until_failed x
[ "$(ublk_state x)" = failed ] || fail "x is not failed: $(ublkctl status x)"
ublkctl create y --spec /var/tmp/null.json || fail "cannot create a device after a failed one"
ublkctl list
[ "$(ublk_state y)" = live ] || fail "y is not live"
ublkctl delete x
ublkctl delete y
expect_no_devices
pass
