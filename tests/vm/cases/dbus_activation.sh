#!/bin/bash
# Description: the README's busctl CreateDevice call D-Bus-activates ublkd; the device serves fio
# with verify; ListDevices (bus and ublkctl) shows it; DeleteDevice removes it.
source "$(dirname "$0")/../lib.sh"

step "ublkd is not running before the first call"
! systemctl is-active --quiet ublkd || fail "ublkd is already active"
mkdir -p /var/lib/ublk
truncate -s 256M /var/lib/ublk/disk0.img
defer rm -f /var/lib/ublk/disk0.img

step "busctl CreateDevice, exactly as in the README"
reply=$(busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager CreateDevice ss disk0 '{"target":"loop","path":"/var/lib/ublk/disk0.img"}')
echo "  $reply"
[[ $reply =~ ^uo\ ([0-9]+)\ \"/org/ublk/Device/disk0\"$ ]] || fail "unexpected reply: $reply"
id=${BASH_REMATCH[1]}
defer "busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager DeleteDevice s disk0 2>/dev/null"
systemctl is-active --quiet ublkd || fail "ublkd was not activated"
[ -b "/dev/ublkb$id" ] || fail "/dev/ublkb$id is not a block device"

step "the device serves fio with crc32c verify"
fio_verify "/dev/ublkb$id" --size=64M --iodepth=32

step "ListDevices, the device object and ublkctl agree"
list=$(busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager ListDevices)
echo "  $list"
expect_contains "$list" disk0
grep -q "\"disk0\" $id \"loop\" \"live\" 268435456 \"/dev/ublkb$id\"" <<<"$list" || fail "ListDevices row wrong: $list"
state=$(busctl get-property org.ublk.Manager /org/ublk/Device/disk0 org.ublk.Device State)
[ "$state" = 's "live"' ] || fail "State property: $state"
objects=$(busctl call org.ublk.Manager /org/ublk org.freedesktop.DBus.ObjectManager GetManagedObjects)
grep -q "/org/ublk/Device/disk0" <<<"$objects" || fail "ObjectManager does not list the device"
ublkctl list
ublkctl list --json | jq -e '[.[].name] == ["disk0"]' >/dev/null || fail "ublkctl list --json: $(ublkctl list --json)"
[ "$(ublk_state disk0)" = live ] || fail "ublkctl status: $(ublkctl status disk0)"
features=$(busctl get-property org.ublk.Manager /org/ublk/Manager org.ublk.Manager KernelFeatures)
expect_contains "$features" CMD_IOCTL_ENCODE

step "the journal carries structured fields"
journal DEVICE=disk0 | grep -q "live as /dev/ublkb$id" || fail "no journal entry with DEVICE=disk0"

step "DeleteDevice removes it"
busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager DeleteDevice s disk0
[ ! -e "/dev/ublkb$id" ] || fail "/dev/ublkb$id still exists"
[ -z "$(busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager ListDevices | grep disk0)" ] ||
  fail "ListDevices still shows disk0"
expect_no_devices
pass
