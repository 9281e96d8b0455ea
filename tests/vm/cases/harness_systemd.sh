#!/bin/bash
# Description: a systemd-mode guest is a real system: systemd is PID 1, the system bus answers,
# udev runs, the build is installed, and a transient unit runs ublkd with its output in the journal.
source "$(dirname "$0")/../lib.sh"

step "systemd is PID 1 and the system bus answers"
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm)"
busctl --system status org.freedesktop.DBus >/dev/null || fail "no system bus"
systemctl is-active --quiet systemd-udevd || fail "systemd-udevd is not active"

step "the build is installed into the guest"
[ -x /usr/sbin/ublkd ] || fail "/usr/sbin/ublkd is not installed"

step "a transient unit runs ublkd features; its output lands in the journal"
systemd-run --wait --unit=ublkvm-features /usr/sbin/ublkd features >/dev/null
journal=$(journal -u ublkvm-features)
echo "$journal"
expect_contains "$journal" CMD_IOCTL_ENCODE

pass
