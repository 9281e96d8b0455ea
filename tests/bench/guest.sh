#!/bin/bash
# Description: the benchmark, inside one guest boot: ublkd-null vs null_blk and ublkd-loop vs the
# kernel's loop over the same backing file (buffered backing I/O on both), 4k randread and
# randwrite, IOPS at qd 64 and mean completion latency at qd 1, three interleaved repetitions.
# Writes results.json and, per ublkd device, a perf profile to the results share.
source "$(dirname "$0")/../vm/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-6}
reps=${UBLKD_BENCH_REPS:-3}
out=$UBLKD_RESULTS

# measure DEV RW QD -> "iops clat_mean_us"
measure() {
  fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw="$2" --bs=4k --iodepth="$3" \
    --runtime="$runtime" --ramp_time=1 --time_based --norandommap --randrepeat=0 --output-format=json |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; d=j["read"] if j["read"]["io_bytes"] else j["write"]; print(round(d["iops"]), round(d["clat_ns"]["mean"]/1000, 1))'
}
set_none() { echo none >"/sys/block/$(basename "$1")/queue/scheduler"; }

step "devices"
rmmod null_blk
modprobe null_blk nr_devices=1 gb=4 queue_mode=2 submit_queues=1 hw_queue_depth=128 irqmode=0
set_none /dev/nullb0
mkdir -p /var/tmp/bench
mount -t tmpfs -o size=2G bench /var/tmp/bench
defer "umount /var/tmp/bench"
backing=/var/tmp/bench/backing.img
dd if=/dev/zero of="$backing" bs=1M count=1024 status=none
loopdev=$(losetup --find --show "$backing")
defer losetup -d "$loopdev"
set_none "$loopdev"
serve_device '{"target":"null","size":"4G","queues":1,"depth":128}'
ublk_null=$UBLK_DEV null_pid=$UBLK_PID
serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":1,\"depth\":128,\"direct_io\":false}"
ublk_loop=$UBLK_DEV
echo "null_blk /dev/nullb0, ublkd-null $ublk_null, loop $loopdev, ublkd-loop $ublk_loop"

results=()
for rep in $(seq "$reps"); do
  for rw in randread randwrite; do
    for pair in "null /dev/nullb0 $ublk_null" "loop $loopdev $ublk_loop"; do
      set -- $pair
      for qd in 64 1; do
        k=$(measure "$2" "$rw" "$qd")
        u=$(measure "$3" "$rw" "$qd")
        echo "rep $rep $1 $rw qd $qd: kernel $k | ublkd $u"
        results+=("{\"rep\":$rep,\"target\":\"$1\",\"rw\":\"$rw\",\"qd\":$qd,\"kernel\":[${k/ /,}],\"ublkd\":[${u/ /,}]}")
      done
    done
  done
done
(IFS=,; echo "{\"kernel\":\"$(uname -r)\",\"runtime\":$runtime,\"results\":[${results[*]}]}") >"$out/results.json"

step "profiles: perf record -a -g while fio runs at qd 64"
cat /proc/kallsyms >"$out/kallsyms"
for pair in "null $ublk_null" "loop $ublk_loop"; do
  set -- $pair
  perf record -a -g -q -o "/var/tmp/perf-$1.data" -- fio --name=p --filename="$2" --ioengine=io_uring --direct=1 \
    --rw=randread --bs=4k --iodepth=64 --runtime=4 --time_based --output=/dev/null
  cp "/var/tmp/perf-$1.data" "$out/"  # perf cannot write its file on the 9p share itself
done
pass
