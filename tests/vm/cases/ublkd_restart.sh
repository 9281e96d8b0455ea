#!/bin/bash
# Description: ublkd itself restarts under I/O without taking the device down: SIGKILL (systemd
# restarts it) and `systemctl restart` leave the queue daemon serving and ListDevices unchanged;
# a queue daemon that dies while ublkd is down is recovered when ublkd starts. fio verifies all
# along, and ublk@disk0 stays active throughout.
source "$(dirname "$0")/../lib.sh"

unit_loop_device disk0 128M
start_verifier /dev/ublk/by-name/disk0

serving_pid() { pgrep -f 'ublkd serve --spec /run/ublkd/devices/disk0.spec.json'; }
listing() { busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager ListDevices; }
# expect_unchanged WHAT: ublkd is back, with the same device, served by the same daemon.
expect_unchanged() {
  wait_until 30 output_is "$list" listing || fail "after $1, ListDevices is '$(listing)', was '$list'"
  [ "$(serving_pid)" = "$pid" ] || fail "after $1 the queue daemon is $(serving_pid), was $pid"
  systemctl is-active --quiet ublk@disk0 || fail "ublk@disk0 is $(systemctl is-active ublk@disk0) after $1"
}
pid=$(serving_pid)
list=$(listing)
echo "  $list (queue daemon $pid)"
expect_io_flows /dev/ublk/by-name/disk0

step "SIGKILL ublkd: systemd restarts it, and it adopts the device as it was"
old=$(systemctl show -P MainPID ublkd)
restarted() { ! output_is "$old" systemctl show -P MainPID ublkd && ! output_is 0 systemctl show -P MainPID ublkd; }
kill -KILL "$old"
wait_until 30 restarted ||
  fail "systemd did not restart ublkd"
expect_unchanged "SIGKILL of ublkd"
journal -u ublkd | grep -q "device disk0: adopted" || fail "no adoption in the journal"
expect_io_flows /dev/ublk/by-name/disk0

step "systemctl restart ublkd: the same"
systemctl restart ublkd
expect_unchanged "systemctl restart ublkd"
expect_io_flows /dev/ublk/by-name/disk0

step "the queue daemon dies while ublkd is stopped: I/O waits, and the next ublkd recovers it"
systemctl stop ublkd
kill -KILL "$pid"
wait_until 10 process_gone "$pid" || fail "the queue daemon $pid outlived SIGKILL"
sleep 1 # the device is left without a server for a while
[ -b /dev/ublk/by-name/disk0 ] || fail "the device went away with its daemon"
systemctl start ublkd
wait_until 30 state_is disk0 live || fail "disk0 is $(ublk_state disk0) after ublkd started"
[ "$(ublk_prop disk0 RestartCount)" = 1 ] || fail "RestartCount is $(ublk_prop disk0 RestartCount), expected 1"
expect_contains "$(ublk_prop disk0 LastExitReason)" "gone while ublkd was down"
new=$(serving_pid)
[ -n "$new" ] && [ "$new" != "$pid" ] || fail "no new queue daemon serves disk0 ($new)"
systemctl is-active --quiet ublk@disk0 || fail "ublk@disk0 is $(systemctl is-active ublk@disk0)"
expect_io_flows /dev/ublk/by-name/disk0

stop_verifier
expect_no_io_errors

step "stopping ublk@disk0 removes the device; nothing is left"
systemctl stop ublk@disk0
expect_no_devices
pass
