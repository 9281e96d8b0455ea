#!/bin/bash
# Description: `ublkd serve` that fails at any step exits non-zero with the reason and leaves no
# device behind: a bad spec (before ADD_DEV), and a scheduler the kernel cannot load (after START_DEV).
source "$(dirname "$0")/../lib.sh"

no_devices() { ! ls /dev/ublkb* /dev/ublkc* >/dev/null 2>&1 || fail "left behind: $(ls /dev/ublk*)"; }
# expect_serve_fails SPEC_JSON EXIT_CODE MESSAGE
expect_serve_fails() {
  echo "$1" >/var/tmp/spec.json
  local rc=0
  timeout 30 ublkd serve --spec /var/tmp/spec.json >/var/tmp/out 2>/var/tmp/err || rc=$?
  [ "$rc" -eq "$2" ] || fail "exit $rc, expected $2: $(cat /var/tmp/err)"
  grep -q -- "$3" /var/tmp/err || fail "expected '$3' in: $(cat /var/tmp/err)"
  echo "  rejected: $(cat /var/tmp/err)"
  no_devices
}

step "a missing backing file"
expect_serve_fails '{"target":"loop","path":"/var/tmp/missing.img"}' 2 '/path: cannot open /var/tmp/missing.img'
step "an absurd queue count"
expect_serve_fails '{"target":"null","size":"1G","queues":100000}' 2 '/queues'

step "a scheduler the kernel cannot load fails after START_DEV, and the device is removed"
echo "install kyber-iosched /bin/false" >/etc/modprobe.d/ublkvm-no-kyber.conf
defer rm -f /etc/modprobe.d/ublkvm-no-kyber.conf
expect_serve_fails '{"target":"null","size":"1G","scheduler":"kyber"}' 1 "cannot set I/O scheduler 'kyber'"
pass
