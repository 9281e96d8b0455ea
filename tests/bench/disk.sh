#!/bin/bash
# Description: the disk benchmark, inside one guest boot: what operators run. A file on ext4 on
# the guest's virtio disk (cache=none on the host), served O_DIRECT by the kernel's loop
# (--direct-io=on) and by ublkd loop, zero-copy where the kernel has AUTO_BUF_REG and with copies
# (UBLKD_ZERO_COPY=0). 4k randread and randwrite at qd 64, 128k sequential read and write at
# qd 16, 4k randread at qd 1 (latency); each repetition runs every device once per workload, in
# a rotating order. Then buffered backing with a cold page cache (dropped before each run): the
# kernel's loop against ublkd through the file mapping and through io_uring reads
# (UBLKD_LOOP_BUFFERED=ring), 4k randread and randwrite at qd 64 and 128k read at qd 16. Writes
# results.json and results-cold.json to the results share (UBLKD_BENCH_PARTS="direct" or "cold"
# runs one part).
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-5}
reps=${UBLKD_BENCH_REPS:-5}
parts=" ${UBLKD_BENCH_PARTS:-direct cold} "  # which of the two parts to run

step "devices: a 512M file on ext4 on the virtio disk"
disk_backing
backing=$BACKING loopdev=$LOOPDEV
spec="{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":1,\"depth\":128,\"direct_io\":true}"
serve_device "$spec"
ublk_zc=$UBLK_DEV
zc_path=$(loop_data_path true)
expect_data_path true
export UBLKD_ZERO_COPY=0
serve_device "$spec"
unset UBLKD_ZERO_COPY
ublk_copy=$UBLK_DEV
grep -q 'data path copy$' "$UBLK_OUT" || fail "UBLKD_ZERO_COPY=0 did not give a copy device: $(cat "$UBLK_OUT")"
echo "kernel loop $loopdev, ublkd-loop $ublk_zc ($zc_path), ublkd-loop $ublk_copy (copy)"

step "O_DIRECT backing"
devices=("kernel $loopdev" "ublkd-copy $ublk_copy")
# Without AUTO_BUF_REG both ublkd devices copy: the second would measure the same thing again.
[ "$zc_path" = zero-copy ] && devices+=("ublkd-zero-copy $ublk_zc")
[[ $parts == *" direct "* ]] && run_rows results "randread 4k 64" "randwrite 4k 64" "read 128k 16" "write 128k 16" "randread 4k 1" -- "${devices[@]}"

[[ $parts == *" cold "* ]] || pass
step "buffered backing, cold page cache: the kernel's loop, ublkd through the mapping, ublkd through the ring"
losetup -d "$loopdev"
loopdev=$(losetup --find --show --direct-io=off --sector-size 4096 "$backing")
defer losetup -d "$loopdev"
set_none "$loopdev"
spec="{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":1,\"depth\":128,\"direct_io\":false}"
UBLKD_LOOP_BUFFERED=mapped serve_device "$spec"
ublk_mapped=$UBLK_DEV
UBLKD_LOOP_BUFFERED=mapped expect_data_path false
export UBLKD_LOOP_BUFFERED=ring
serve_device "$spec"
unset UBLKD_LOOP_BUFFERED
ublk_ring=$UBLK_DEV
COLD=1 run_rows results-cold "randread 4k 64" "randwrite 4k 64" "read 128k 16" -- \
  "kernel $loopdev" "ublkd-mapped $ublk_mapped" "ublkd-ring-$zc_path $ublk_ring"
pass
