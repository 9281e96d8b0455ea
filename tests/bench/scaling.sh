#!/bin/bash
# Description: the scaling benchmark, inside one 4-vCPU guest boot: 1, 2 and 4 queues with as
# many fio jobs (4k randread, qd 32 each), for null (ublkd-null, with and without the queue
# thread's poll window, against null_blk with as many submit queues) and for loop (ublkd loop,
# O_DIRECT and zero-copy where the kernel has it, against the kernel's loop with
# --direct-io=on, over a file on ext4 on the cache=none virtio disk). Besides IOPS it records the
# guest's CPU time per I/O (busy jiffies in /proc/stat over the run, all CPUs), since IOPS alone
# hide cost when the emulator is the bottleneck. Repetitions rotate the device order. Writes
# results.json to the results share.
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-5}
reps=${UBLKD_BENCH_REPS:-5}
out=$UBLKD_RESULTS

busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# measure DEV JOBS -> "iops clat_mean_us cpu_us_per_io"
measure() {
  local before after json
  before=$(busy_jiffies)
  json=$(fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=32 \
    --numjobs="$2" --group_reporting --runtime="$runtime" --ramp_time=1 --time_based --norandommap \
    --randrepeat=0 --output-format=json)
  after=$(busy_jiffies)
  echo "$json" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]["read"]
ios, secs = j["total_ios"], j["runtime"] / 1000
hz, busy = int(sys.argv[2]), int(sys.argv[1])
# Busy time covers the ramp too: scale it to the measured part.
cpu_us = busy / hz * 1e6 * secs / (secs + 1) / max(ios, 1)
print(round(j["iops"]), round(j["clat_ns"]["mean"] / 1000, 1), round(cpu_us, 1))' "$((after - before))" "$(getconf CLK_TCK)"
}

[ "$(nproc)" -ge 4 ] || fail "needs a 4-vCPU guest (tests/vm/run --smp 4), has $(nproc)"
step "backing: a 512M file on ext4 on the virtio disk"
disk_backing
backing=$BACKING loopdev=$LOOPDEV

results=()
record() { # WORKLOAD DEVICE REP "iops clat cpu"
  set -- "$1" "$2" "$3" $4
  results+=("{\"workload\":\"$1\",\"device\":\"$2\",\"rep\":$3,\"iops\":$4,\"clat_us\":$5,\"cpu_us_per_io\":$6}")
}
for q in 1 2 4; do
  step "$q queues, $q jobs"
  rmmod null_blk 2>/dev/null || true
  modprobe null_blk nr_devices=1 gb=4 queue_mode=2 submit_queues="$q" hw_queue_depth=128 irqmode=0
  set_none /dev/nullb0
  served=()
  serve_device "{\"target\":\"null\",\"size\":\"4G\",\"queues\":$q,\"depth\":128}"
  ublk_null=$UBLK_DEV served+=("$UBLK_DEV $UBLK_PID")
  export UBLKD_POLL_US=0
  serve_device "{\"target\":\"null\",\"size\":\"4G\",\"queues\":$q,\"depth\":128}"
  unset UBLKD_POLL_US
  ublk_null_nopoll=$UBLK_DEV served+=("$UBLK_DEV $UBLK_PID")
  serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":$q,\"depth\":128,\"direct_io\":true}"
  ublk_loop=$UBLK_DEV served+=("$UBLK_DEV $UBLK_PID")
  expect_queues "$q"
  loop_name=ublkd-$(loop_data_path true)
  null_devices=("kernel /dev/nullb0" "ublkd-null $ublk_null" "ublkd-null-nopoll $ublk_null_nopoll")
  for rep in $(seq "$reps"); do
    line="rep $rep null q$q:"
    for i in 0 1 2; do
      set -- ${null_devices[$(((i + rep) % 3))]}
      m=$(measure "$2" "$q")
      record "null q$q" "$1" "$rep" "$m"
      line+=" $1 $m |"
    done
    echo "$line"
    line="rep $rep loop q$q:"
    for i in 0 1; do
      if [ $(((i + rep) % 2)) = 0 ]; then set -- kernel "$loopdev"; else set -- "$loop_name" "$ublk_loop"; fi
      m=$(measure "$2" "$q")
      record "loop q$q" "$1" "$rep" "$m"
      line+=" $1 $m |"
    done
    echo "$line"
  done
  for d in "${served[@]}"; do
    read -r UBLK_DEV UBLK_PID <<<"$d"
    stop_device
  done
done
(IFS=,; echo "{\"kernel\":\"$(uname -r)\",\"runtime\":$runtime,\"cpus\":$(nproc),\"results\":[${results[*]}]}") >"$out/results.json"
pass
