#!/bin/bash
# Description: the second boot of tests/vm/boot-devices. systemd mounted /dev/ublk/by-name/bootdisk
# at boot from the fstab line, through what ublk-generator wrote for the spec with "boot": true:
# ublk@bootdisk.service is active and was ordered, and ready, before the mount began; the data
# of the first boot is intact; the bad spec was named in the kernel log and skipped. Then the guest
# powers off with the filesystem mounted (boot-devices checks that it was unmounted first).
source "$(dirname "$0")/../lib.sh"

[ -f /ublkvm-carry/expected ] || skip "no first boot before this one: run tests/vm/boot-devices"
[ -f /etc/ublk.d/bootdisk.json ] || fail "the carried /etc/ublk.d/bootdisk.json is not in this boot's /etc"
mount=mnt-bootdisk.mount unit=ublk@bootdisk.service
show() { systemctl show -p "$2" --value "$1"; }

step "the boot is done: $mount and $unit came up by themselves"
systemctl is-system-running --wait >/dev/null || true
[ "$(show $mount ActiveState)" = active ] ||
  fail "$mount is $(show $mount ActiveState) ($(show $mount Result)): $(journalctl -b -u $mount -u $unit -o cat | tail -n 5)"
[ "$(show $unit ActiveState)" = active ] || fail "$unit is $(show $unit ActiveState)"
read -r source fstype < <(findmnt -n -o SOURCE,FSTYPE /mnt/bootdisk)
[ "$source" = "$(readlink -f /dev/ublk/by-name/bootdisk)" ] && [ "$fstype" = ext4 ] ||
  fail "/mnt/bootdisk is $fstype on $source, not ext4 on /dev/ublk/by-name/bootdisk"
expect_contains "$(show multi-user.target Wants)" "$unit"

step "$unit was ordered before $mount, and was ready before the mount began"
expect_contains "$(show $unit Before)" "$mount"
expect_contains "$(show $mount After)" "$unit"
expect_contains "$(show $mount Requires)" "$unit"
ready=$(show $unit ActiveEnterTimestampMonotonic) began=$(show $mount InactiveExitTimestampMonotonic)
[ "$ready" -gt 0 ] && [ "$ready" -le "$began" ] || fail "$unit was ready at $ready us, the mount began at $began us"

step "the data of the first boot is intact"
(cd /mnt/bootdisk && sha256sum --quiet -c /ublkvm-carry/expected) || fail "the data written at the first boot changed"

step "the bad spec was named with its field and skipped"
journalctl -b -k -o cat | grep -qF '/etc/ublk.d/badboot.json: /boot: must be a boolean, not a string ("yes"); skipped' ||
  fail "no ublk-generator message about badboot.json in the kernel log"
[ "$(show ublk@badboot.service ActiveState)" = inactive ] || fail "ublk@badboot.service was started"

step "poweroff with the filesystem mounted"
power_off_after_case
pass
