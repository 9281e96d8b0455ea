#!/bin/bash
# Description: what statistics cost, inside one guest boot: two ublkd null devices, one counting
# into a statistics file (`serve --stats-fd`, as ublkd runs every queue daemon) and one not,
# beside null_blk; 4k random reads and writes at qd 64 and reads at qd 1, rotating repetitions.
# Writes results.json to the results share; tests/bench/run --stats reports ublkd-stats over
# ublkd-nostats (the cost) and each over null_blk.
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-5}
reps=${UBLKD_BENCH_REPS:-7}

step "null_blk and two ublkd null devices, statistics off and on"
rmmod null_blk 2>/dev/null || true
modprobe null_blk nr_devices=1 gb=4 queue_mode=2 submit_queues=1 hw_queue_depth=128 irqmode=0
defer "rmmod null_blk"
set_none /dev/nullb0
spec='{"target":"null","size":"4G","queues":1,"depth":128}'
serve_device "$spec"
off=$UBLK_DEV
exec 9<>/var/tmp/bench.stats
defer rm -f /var/tmp/bench.stats
serve_device "$spec" --stats-fd 9
on=$UBLK_DEV
exec 9>&-
set_none "$off"
set_none "$on"

run_rows results "randread 4k 64" "randwrite 4k 64" "randread 4k 1" -- \
  "kernel /dev/nullb0" "ublkd-nostats $off" "ublkd-stats $on"

# The counting device counted: the file has the layout's magic, and queue 0's reads (the first
# counter of its first operation: 64 bytes of header, 64 of in-flight and padding) are not zero.
[ "$(head -c 7 /var/tmp/bench.stats)" = UBLKST1 ] || fail "the statistics file was not laid out"
reads=$(od -An -t u8 -j 128 -N 8 /var/tmp/bench.stats | tr -d ' ')
[ "$reads" -gt 0 ] || fail "the counting device counted no reads"
echo "ublkd-stats counted $reads reads"
pass
