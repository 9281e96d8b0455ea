#!/bin/bash
# Description: ublkd knows its devices by a cookie in the kernel's device info, not by id alone.
# A device another server made at the id of one ublkd had recorded is left alone when ublkd
# starts. ublkd SIGKILLed in the middle of CreateDevice (after ADD_DEV, before the device is
# live) leaves no orphan once systemd has restarted it: every kernel device is one ublkd lists.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk
echo '{"target":"null","size":"64M"}' >/var/lib/ublk/ident.json
defer rm -f /var/lib/ublk/ident.json

step "a device another server made at the id ublkd recorded is never touched"
dev=$(ublkctl create mine --spec /var/lib/ublk/ident.json)
systemctl stop ublkd
# SIGTERM: the queue daemon stops and deletes its device, and the id is free again.
pkill -TERM -f 'ublkd serve --spec /run/ublkd/devices/mine.spec.json'
wait_until 10 test ! -e "$dev" || fail "$dev is still there after its daemon's SIGTERM"
serve_device '{"target":"null","size":"32M"}' # by hand: no cookie, another server's device
[ "$UBLK_DEV" = "$dev" ] || fail "the foreign device is $UBLK_DEV; the test needs the freed $dev"
ublkctl list >/dev/null # starts ublkd, which looks at its record of mine
foreign_seen() { journal -u ublkd | grep -q "mine: $dev is another server's device now"; }
wait_until 10 foreign_seen || fail "ublkd did not notice: $(journal -u ublkd | tail -n 5)"
! ublkctl status mine >/dev/null 2>&1 || fail "mine is still listed: $(ublkctl status mine)"
kill -0 "$UBLK_PID" || fail "the foreign server was killed"
[ "$(blockdev --getsize64 "$UBLK_DEV")" = $((32 << 20)) ] || fail "$UBLK_DEV is not the foreign device any more"
dd if="$UBLK_DEV" of=/dev/null bs=4k count=16 iflag=direct status=none || fail "the foreign device stopped serving"
stop_device

step "ublkd SIGKILLed during CreateDevice, three times: no orphan after each restart"
kernel_ids() { ls /sys/class/ublk-char 2>/dev/null | sed -n 's/^ublkc//p' | sort -n | xargs; }
listed_ids() { ublkctl list --json | jq -r '[.[] | select(.id != 4294967295) | .id] | sort | map(tostring) | join(" ")'; }
ublkd_up() { ublkctl list >/dev/null 2>&1; }
for round in 1 2 3; do
  old=$(systemctl show -P MainPID ublkd)
  ublkctl create "race$round" --spec /var/lib/ublk/ident.json >/dev/null 2>&1 &
  creator=$!
  # The moment ADD_DEV has made the kernel device, before its queues are up.
  timeout 30 bash -c 'until compgen -G "/sys/class/ublk-char/ublkc*" >/dev/null; do :; done' ||
    fail "round $round: no kernel device appeared"
  kill -KILL "$old"
  wait "$creator" || true
  wait_until 30 ublkd_up || fail "round $round: systemd did not bring ublkd back"
  wait_until 10 output_is "$(listed_ids)" kernel_ids ||
    fail "round $round: kernel devices '$(kernel_ids)', ublkd lists '$(listed_ids)'"
  echo "  round $round: kernel devices '$(kernel_ids)', listed '$(listed_ids)'"
  ublkctl delete "race$round" --missing-ok
  wait_until 10 output_is "" kernel_ids || fail "round $round: left behind: $(kernel_ids)"
done
echo "  cut short and removed: $(journal -u ublkd | grep -c 'its creation was cut short' || true) of 3"
expect_no_devices
pass
