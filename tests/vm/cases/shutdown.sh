#!/bin/bash
# Description: `systemctl poweroff` with ext4 mounted on a ublk@ device completes cleanly: the
# filesystem is unmounted while its queue daemon still serves, and the kernel logs no I/O error.
# The host checks the console once the guest is off (tests/vm/run, expect-poweroff).
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk /etc/ublk.d /mnt/disk0
truncate -s 256M /var/lib/ublk/disk0.img
echo '{"target":"loop","path":"/var/lib/ublk/disk0.img"}' >/etc/ublk.d/disk0.json

step "ext4 mounted on ublk@disk0, with writes in flight"
systemctl start ublk@disk0
wait_for_link disk0
mkfs.ext4 -q /dev/ublk/by-name/disk0
mount /dev/ublk/by-name/disk0 /mnt/disk0
head -c 32M /dev/urandom >/mnt/disk0/data
systemd-run --unit=ublkvm-writer --property=Restart=no \
  sh -c 'while :; do head -c 1M /dev/urandom >/mnt/disk0/w; done'

step "poweroff (the test unit's reboot actions are lifted so this shutdown is the real one)"
mkdir -p /run/systemd/system/ublkd-vmtest.service.d
printf '[Unit]\nSuccessAction=none\nFailureAction=none\n' >/run/systemd/system/ublkd-vmtest.service.d/poweroff.conf
systemctl daemon-reload
touch "$UBLKD_RESULTS/expect-poweroff"
# systemd's own account of the shutdown goes to the console, where the host reads it.
systemd-analyze log-target console
systemd-analyze log-level info
# A few seconds later, so this test first reports its status (tests/vm/guest/run-test); a timer's
# default accuracy is a minute, so it is set to fire on time.
systemd-run --on-active=3 --timer-property=AccuracySec=100ms --unit=ublkvm-poweroff systemctl poweroff
pass
