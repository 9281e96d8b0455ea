#!/bin/bash
# Description: the installed units are sandboxed: `systemd-analyze security` rates ublk@.service
# at most 1.5 and ublkd.service at most 2.5 (1.0 of it the network that the nbd and rbd targets
# need, and only that is open beyond 1.5), and ublkd under that sandbox still serves a loop device
# on a file and on a block device (with a scheduler, the by-name link and a recovery).
source "$(dirname "$0")/../lib.sh"

# exposure UNIT: the overall exposure level systemd-analyze gives it.
exposure() { systemd-analyze security --no-pager "$1" | awk '/Overall exposure level/ {print $(NF-2)}'; }
for limit in ublkd.service:2.5 ublk@hardening.service:1.5; do
  unit=${limit%:*}
  level=$(exposure "$unit")
  echo "  $unit: exposure $level"
  awk -v l="$level" -v max="${limit#*:}" 'BEGIN { exit !(l != "" && l <= max) }' ||
    fail "$unit has exposure '$level': $(systemd-analyze security --no-pager "$unit" | grep '✗')"
done
# What the network targets open, and nothing else: no packet sockets, netlink or the like.
families=$(systemctl show -P RestrictAddressFamilies ublkd.service)
[ "$families" = "AF_INET AF_INET6 AF_UNIX" ] || fail "ublkd.service allows the address families '$families'"

step "a loop device on a file, with mq-deadline, through ublk@ (the by-name link appears)"
unit_loop_device hardening 64M ',"scheduler":"mq-deadline"'
grep -q '\[mq-deadline\]' "/sys/block/$(basename "$(readlink -f /dev/ublk/by-name/hardening)")/queue/scheduler" ||
  fail "the scheduler was not set"
fio_verify /dev/ublk/by-name/hardening --size=16M
kill_queue_daemon hardening
wait_until 30 prop_is hardening RestartCount 1 || fail "not recovered under the sandbox"
wait_until 10 state_is hardening live || fail "not live after recovery"
fio_verify /dev/ublk/by-name/hardening --size=16M

step "a loop device on a block device"
null_blk_device ublkvm-hardening 64 512 0
ublk_call CreateDevice string:onblock "string:{\"target\":\"loop\",\"path\":\"$NULLB_DEV\"}" >/dev/null ||
  fail "cannot serve $NULLB_DEV under the sandbox: $(journal -u ublkd | tail -n 5)"
defer "ublkctl delete onblock --missing-ok"
fio_verify "$(ublk_prop onblock BlockDevice)" --size=16M
ublkctl delete onblock
pass
