#!/bin/bash
# Description: 30 create/delete cycles with I/O in between leave no device, queue daemon or fd behind.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk
truncate -s 64M /var/lib/ublk/churn.img
defer rm -f /var/lib/ublk/churn.img
echo '{"target":"loop","path":"/var/lib/ublk/churn.img"}' >/var/tmp/loop.json
echo '{"target":"null","size":"64M"}' >/var/tmp/null.json
defer rm -f /var/tmp/pattern

step "warm up: the first cycle activates ublkd"
ublkctl create warm --spec /var/tmp/null.json >/dev/null
ublkctl delete warm
pid=$(systemctl show -P MainPID ublkd)
fds_before=$(ls /proc/$pid/fd | wc -l)
# ublkd's own threads: io_uring's iou-wrk workers belong to the kernel, which keeps the last one of
# a ring idle on newer kernels (7.x), and bounds them.
threads() { cat /proc/$pid/task/*/comm | grep -cv '^iou-'; }
threads_before=$(threads)

step "30 cycles, alternating loop and null, with verified I/O on each"
for i in $(seq 30); do
  spec=/var/tmp/null.json
  [ $((i % 2)) -eq 0 ] && spec=/var/tmp/loop.json
  dev=$(ublkctl create "churn$i" --spec "$spec") || fail "cycle $i: create failed"
  if [ "$spec" = /var/tmp/loop.json ]; then
    # A fresh pattern each cycle, written and read back past the page cache: the data is the
    # device's, not a previous cycle's. (dd and cmp: fio's verify costs a second a cycle to start.)
    head -c 4M /dev/urandom >/var/tmp/pattern
    dd if=/var/tmp/pattern of="$dev" bs=256k oflag=direct status=none || fail "cycle $i: write to $dev failed"
    dd if="$dev" bs=256k count=16 iflag=direct status=none | cmp -s - /var/tmp/pattern ||
      fail "cycle $i: $dev read back other data than was written"
  else # null keeps no data: I/O without errors is all it can show (dd: a tenth of fio's start-up)
    dd if=/dev/zero of="$dev" bs=64k count=64 oflag=direct status=none &&
      dd if="$dev" of=/dev/null bs=64k count=64 iflag=direct status=none || fail "cycle $i: I/O on $dev failed"
  fi
  ublkctl delete "churn$i" || fail "cycle $i: delete failed"
  [ ! -e "$dev" ] || fail "cycle $i: $dev still exists"
done

step "nothing left behind"
expect_no_devices
[ "$(ublkctl list --json)" = "[]" ] || fail "ublkd still lists: $(ublkctl list)"
[ "$(systemctl show -P MainPID ublkd)" = "$pid" ] || fail "ublkd restarted during the cycles"
fds_after=$(ls /proc/$pid/fd | wc -l)
threads_after=$(threads)
echo "  ublkd fds $fds_before -> $fds_after, threads $threads_before -> $threads_after"
[ "$fds_after" -le "$fds_before" ] || fail "ublkd leaked fds: $fds_before -> $fds_after ($(ls -l /proc/$pid/fd))"
# The last DeleteDevice's probe ran on a detached worker thread that may still be on its way out.
wait_until 5 eval '[ "$(threads)" -le "$threads_before" ]' ||
  fail "ublkd leaked threads: $threads_before -> $(threads): $(cat /proc/$pid/task/*/comm | tr '\n' ' ')"
[ -z "$(find /run/ublkd/devices /run/ublkd/udev -type f)" ] || fail "records left in /run/ublkd: $(find /run/ublkd -type f)"
pass
