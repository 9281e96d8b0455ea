#!/bin/bash
# Description: the built .deb installs with dpkg -i in a systemd guest, and `systemctl start
# ublk@disk0` then serves a verified device from the packaged binaries and units.
source "$(dirname "$0")/../lib.sh"

deb=$(ls "$UBLKD_BUILD"/deb/ublkd_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || fail "no .deb in $UBLKD_BUILD/deb (the package.deb test builds it)"

step "dpkg -i $(basename "$deb")"
dpkg -i "$deb" >/var/tmp/dpkg.log 2>&1 || fail "dpkg -i failed: $(tail -n 20 /var/tmp/dpkg.log)"
# One query of the package database (each dpkg query reads all of it: seconds in the emulator).
files=$(dpkg -L ublkd) || fail "dpkg -L ublkd failed"
for f in /lib/systemd/system/ublk@.service /usr/sbin/ublkd /usr/bin/ublkctl /usr/share/dbus-1/system.d/org.ublk.Manager.conf \
  /usr/share/dbus-1/system-services/org.ublk.Manager.service /lib/udev/rules.d/90-ublkd.rules \
  /usr/lib/systemd/system-generators/ublk-generator; do
  grep -qxF "$f" <<<"$files" || fail "$f does not come from the package"
done

step "systemctl start ublk@disk0 with a packaged example spec"
mkdir -p /var/lib/ublk
truncate -s 128M /var/lib/ublk/disk0.img
defer rm -f /var/lib/ublk/disk0.img
cp /usr/share/doc/ublkd/examples/loop-file.json /etc/ublk.d/disk0.json
defer rm -f /etc/ublk.d/disk0.json
systemctl daemon-reload
systemctl start ublk@disk0
defer systemctl stop ublk@disk0
wait_for_link disk0
fio_verify /dev/ublk/by-name/disk0 --size=32M

step "stop removes it"
systemctl stop ublk@disk0
expect_no_devices
pass
