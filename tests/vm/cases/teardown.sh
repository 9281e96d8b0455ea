#!/bin/bash
# Description: serving and stopping devices leaks nothing: one thread per queue plus main (io_uring's
# own iou-* workers aside), a fixed set of fds, nothing under /dev/ublk* after ten create/stop cycles.
source "$(dirname "$0")/../lib.sh"

backing=$(scratch_file 64M)
serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":3}"
threads=$(cat /proc/"$UBLK_PID"/task/*/comm | grep -vc '^iou-')
queue_threads=$(cat /proc/"$UBLK_PID"/task/*/comm | grep -c '^ublkd-q')
queues=$(ls "/sys/block/${UBLK_DEV#/dev/}/mq" | wc -l)  # the kernel clamps queues to the CPU count
fds=$(ls "/proc/$UBLK_PID/fd" | wc -l)
step "$queues queues: $queue_threads queue threads, $threads threads in all, $fds fds"
[ "$queue_threads" -eq "$queues" ] && [ "$threads" -eq $((queues + 1)) ] ||
  fail "expected $queues queue threads + main: $(cat /proc/"$UBLK_PID"/task/*/comm)"
stop_device

step "ten create/stop cycles with I/O leave nothing behind"
for i in $(seq 10); do
  serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":3}"
  [ "$(ls "/proc/$UBLK_PID/fd" | wc -l)" -eq "$fds" ] || fail "cycle $i: fd count changed"
  dd if="$UBLK_DEV" of=/dev/null bs=1M count=4 iflag=direct status=none
  stop_device
done
[ "$(ls /dev/ | grep -c '^ublk[bc]')" -eq 0 ] || fail "left behind: $(ls /dev/ublk*)"
pass
