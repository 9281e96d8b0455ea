#!/bin/bash
# Description: deliberately broken: a guest test that passes but leaves a served ublk device, its
# queue daemon and a mount behind. The harness must fail it and give the next test a clean guest.
source "$(dirname "$0")/../lib.sh"
trap - EXIT # no deferred cleanup: leaving things behind is the point
spec=/var/lib/ublkvm-leftover.json
echo '{"target":"null","size":"64M"}' >"$spec"
if [ "$(cat /proc/1/comm)" = systemd ]; then
  step "a device made through ublkd, never deleted"
  ublkctl create leftover --spec "$spec"
else
  step "a queue daemon outside the test's session, never stopped"
  setsid ublkd serve --spec "$spec" >/var/lib/ublkvm-leftover.out 2>&1 </dev/null &
  wait_until 10 grep -q '^/dev/ublkb' /var/lib/ublkvm-leftover.out || fail "no device: $(cat /var/lib/ublkvm-leftover.out)"
fi
mkdir -p /mnt/ublkvm-leftover
mount -t tmpfs leftover /mnt/ublkvm-leftover
pass
