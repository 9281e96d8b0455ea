#!/bin/bash
# Description: what statistics cost, inside one guest boot: two ublkd null devices, one counting
# into a statistics file (`serve --stats-fd`, as ublkd runs every queue daemon) and one not,
# beside null_blk; 4k random reads and writes at qd 64 and reads at qd 1, rotating repetitions.
# Besides IOPS, each ublkd run records its queue daemon's CPU time per I/O (/proc/PID/stat): under
# emulation IOPS swing ±20 % from run to run, the daemon's CPU per I/O much less.
# Writes results.json to the results share; tests/bench/run --stats reports ublkd-stats over
# ublkd-nostats (IOPS and CPU per I/O: the cost) and each over null_blk.
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-5}
reps=${UBLKD_BENCH_REPS:-7}

# measure DEV RW QD [PID] -> "iops clat_mean_us cpu_us_per_io" (cpu: PID's user+system time over
# the I/Os fio did, ramp included on both sides; "null" without a PID)
measure() {
  local before=0 after=0 json
  [ -n "${4:-}" ] && before=$(awk '{print $14 + $15}' "/proc/$4/stat")
  json=$(fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw="$2" --bs=4k --iodepth="$3" \
    --runtime="$runtime" --ramp_time=1 --time_based --norandommap --randrepeat=0 --output-format=json)
  [ -n "${4:-}" ] && after=$(awk '{print $14 + $15}' "/proc/$4/stat")
  python3 -c '
import json, sys
j = json.loads(sys.argv[1])["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
secs = d["runtime"] / 1000
ticks, hz, counted = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
# The ticks cover the 1 s ramp too: scale them to the measured part.
cpu = round(ticks / hz * 1e6 * secs / (secs + 1) / max(d["total_ios"], 1), 2) if counted else None
print(round(d["iops"]), round(d["clat_ns"]["mean"] / 1000, 1), json.dumps(cpu))' \
    "$json" "$((after - before))" "$(getconf CLK_TCK)" "$([ -n "${4:-}" ] && echo 1 || echo 0)"
}

step "null_blk and two ublkd null devices, statistics off and on"
rmmod null_blk 2>/dev/null || true
modprobe null_blk nr_devices=1 gb=4 queue_mode=2 submit_queues=1 hw_queue_depth=128 irqmode=0
defer "rmmod null_blk"
set_none /dev/nullb0
spec='{"target":"null","size":"4G","queues":1,"depth":128}'
serve_device "$spec"
off=$UBLK_DEV off_pid=$UBLK_PID
exec 9<>/var/tmp/bench.stats
defer rm -f /var/tmp/bench.stats
serve_device "$spec" --stats-fd 9
on=$UBLK_DEV on_pid=$UBLK_PID
exec 9>&-
set_none "$off"
set_none "$on"

devices=("kernel /dev/nullb0" "ublkd-nostats $off $off_pid" "ublkd-stats $on $on_pid")
results=()
for rep in $(seq "$reps"); do
  for w in "randread 64" "randwrite 64" "randread 1"; do
    set -- $w
    rw=$1 qd=$2
    line="rep $rep $rw 4k qd $qd:"
    for ((i = 0; i < ${#devices[@]}; i++)); do
      set -- ${devices[$(((i + rep) % ${#devices[@]}))]}
      m=($(measure "$2" "$rw" "$qd" "${3:-}"))
      line+=" $1 ${m[*]} |"
      results+=("{\"rep\":$rep,\"rw\":\"$rw\",\"bs\":\"4k\",\"qd\":$qd,\"device\":\"$1\",\"iops\":${m[0]},\"clat_us\":${m[1]},\"cpu_us_per_io\":${m[2]}}")
    done
    echo "$line"
  done
done
(IFS=,; echo "{\"kernel\":\"$(uname -r)\",\"runtime\":$runtime,\"results\":[${results[*]}]}") >"$UBLKD_RESULTS/results.json"

# The counting device counted: the file has the layout's magic, and queue 0's reads (the first
# counter of its first operation: 64 bytes of header, 64 of in-flight and padding) are not zero.
[ "$(head -c 7 /var/tmp/bench.stats)" = UBLKST1 ] || fail "the statistics file was not laid out"
reads=$(od -An -t u8 -j 128 -N 8 /var/tmp/bench.stats | tr -d ' ')
[ "$reads" -gt 0 ] || fail "the counting device counted no reads"
echo "ublkd-stats counted $reads reads"
pass
