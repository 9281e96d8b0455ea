#!/bin/bash
# Description: the BATCH_IO benchmark, inside one guest boot (kernels with UBLK_F_BATCH_IO, 7.0+;
# skips elsewhere): does carrying a batch's requests and results in one command each beat a
# command per request? ublkd-null and ublkd loop (zero copy, a file on ext4 on the cache=none
# virtio disk), each served per tag and with UBLKD_BATCH_IO=1, against the kernel's null_blk
# and loop (--direct-io=on); 4k randread and randwrite at qd 64, 4k randread at qd 1, and 128k
# read at qd 16 for loop. Writes results-null.json and results-loop.json to the results share.
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-5}
reps=${UBLKD_BENCH_REPS:-5}
ublkd features | grep -qw BATCH_IO || skip "$(uname -r) has no BATCH_IO"

# serve_pair NAME SPEC: the spec served per tag and batched; sets PAIR ("NAME DEV NAME-batch DEV").
serve_pair() {
  local per_tag
  serve_device "$2"
  grep -q '(batch I/O)' "$UBLK_OUT" && fail "served batched unasked: $(cat "$UBLK_OUT")"
  per_tag=$UBLK_DEV
  UBLKD_BATCH_IO=1 serve_device "$2"
  wait_until 5 grep -q '(batch I/O)' "$UBLK_OUT" || fail "UBLKD_BATCH_IO=1 was not served batched: $(cat "$UBLK_OUT")"
  PAIR=("$1 $per_tag" "$1-batch $UBLK_DEV")
}

step "null: null_blk against ublkd-null per tag and batched"
rmmod null_blk 2>/dev/null || true  # loaded at boot without devices, for configfs
modprobe null_blk nr_devices=1 gb=4 queue_mode=2 submit_queues=1 hw_queue_depth=128 irqmode=0
defer "rmmod null_blk"
set_none /dev/nullb0
serve_pair ublkd-null '{"target":"null","size":"4G","queues":1,"depth":128}'
run_rows results-null "randread 4k 64" "randwrite 4k 64" "randread 4k 1" -- "kernel /dev/nullb0" "${PAIR[@]}"

step "loop: kernel loop against ublkd loop (zero copy) per tag and batched"
disk_backing
serve_pair ublkd-loop "{\"target\":\"loop\",\"path\":\"$BACKING\",\"queues\":1,\"depth\":128,\"direct_io\":true}"
run_rows results-loop "randread 4k 64" "randwrite 4k 64" "read 128k 16" "randread 4k 1" -- "kernel $LOOPDEV" "${PAIR[@]}"
pass
