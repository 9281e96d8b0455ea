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

step "autostart: every valid spec comes up with ublkd; the bad one is logged and skipped"
echo '{"autostart": true}' >/etc/ublk/ublkd.json
defer 'echo "{\"autostart\": false}" >/etc/ublk/ublkd.json'
systemctl start ublkd
for i in $(seq 100); do [ "$(ublkctl list --json | python3 -c 'import json,sys; print(sum(d["state"]=="live" for d in json.load(sys.stdin)))')" = 2 ] && break; sleep 0.2; done
ublkctl list
ublkctl status a | grep -q 'State: live' || fail "a is not live"
ublkctl status b | grep -q 'State: live' || fail "b is not live"
! ublkctl status bad >/dev/null 2>&1 || fail "the invalid spec was brought up"
journalctl -b --no-pager CONFIG_FILE=/etc/ublk.d/bad.json -o cat | grep -q '/queues' ||
  fail "the journal does not name bad.json and /queues"
ublkctl delete a
ublkctl delete b

step "systemctl start ublk@bad fails; the unit's log carries the D-Bus error naming the field"
systemctl start ublk@bad && fail "ublk@bad started"
systemctl is-failed --quiet ublk@bad || fail "ublk@bad is not failed"
log=$(journalctl -b --no-pager -u ublk@bad -o cat)
grep -q 'org.ublk.Error.InvalidSpec' <<<"$log" || fail "no InvalidSpec in ublk@bad's log: $log"
grep -q '/queues' <<<"$log" || fail "the error does not name /queues: $log"
systemctl reset-failed ublk@bad

step "ublk@a keeps serving while another unit fails"
systemctl start ublk@a
defer systemctl stop ublk@a
wait_for_link a
systemctl start ublk@bad || true
fio_verify /dev/ublk/by-name/a --size=16M

step "a queue daemon killed for good fails ublk@a and removes its device"
dev=$(readlink -f /dev/ublk/by-name/a)
pkill -KILL -f 'ublkd serve --spec /run/ublkd/devices/a.spec.json'
for i in $(seq 100); do systemctl is-failed --quiet ublk@a && break; sleep 0.2; done
systemctl is-failed --quiet ublk@a || fail "ublk@a is $(systemctl is-active ublk@a) after its queue daemon died"
for i in $(seq 50); do [ ! -e "$dev" ] && break; sleep 0.2; done
[ ! -e "$dev" ] || fail "$dev still exists after its queue daemon died"
journalctl -b --no-pager DEVICE=a -o cat | grep -q 'killed by SIGKILL' || fail "the journal does not say why a failed"
systemctl reset-failed ublk@a

step "the unit starts again afterwards; a device deleted by hand leaves it inactive, not failed"
systemctl start ublk@a
wait_for_link a
ublkctl delete a
for i in $(seq 50); do systemctl is-active --quiet ublk@a || break; sleep 0.2; done
systemctl stop ublk@a
! systemctl is-failed --quiet ublk@a || fail "ublk@a failed after a delete by hand"

step "a failed device keeps its name only: the next device may take its kernel id"
echo '{"target":"null","size":"64M"}' >/var/tmp/null.json
ublkctl create x --spec /var/tmp/null.json
pkill -KILL -f 'ublkd serve --spec /run/ublkd/devices/x.spec.json'
for i in $(seq 50); do ublkctl status x | grep -q 'State: failed' && break; sleep 0.2; done
ublkctl status x | grep -q 'State: failed' || fail "x is not failed: $(ublkctl status x)"
ublkctl create y --spec /var/tmp/null.json || fail "cannot create a device after a failed one"
ublkctl list
ublkctl status y | grep -q 'State: live' || fail "y is not live"
ublkctl delete x
ublkctl delete y
expect_no_devices
pass
