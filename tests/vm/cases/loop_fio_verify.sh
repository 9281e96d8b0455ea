#!/bin/bash
# Description: every byte a ublkd loop device stores reads back intact: fio randwrite with
# verify=crc32c at bs 4k and mixed 4k-256k, qd 1 and 64, on 1, 2 and 4 queues, with direct
# backing I/O (zero copy where the kernel has AUTO_BUF_REG, else the kernel copies through ublkd's
# buffers) and buffered: on 1, 2 and 4 queues the way ublkd chooses (io_uring reads and writes of
# the page cache where the kernel has AUTO_BUF_REG, else the file mapping, with cache misses
# through the ring), and on 2 queues the other way (UBLKD_LOOP_BUFFERED).
source "$(dirname "$0")/../lib.sh"

# One write-and-verify pass per block size and queue depth, in turn (--stonewall), in one fio.
# 32M each, but 8M for 4k at qd 1: 4096 I/Os one at a time already, the slowest pass by far.
passes=(
  --name=4k-qd1 --stonewall --bs=4k --iodepth=1 --size=8M
  --name=4k-qd64 --stonewall --bs=4k --iodepth=64
  --name=mixed-qd1 --stonewall --bsrange=4k-256k --iodepth=1
  --name=mixed-qd64 --stonewall --bsrange=4k-256k --iodepth=64
)

backing=$(scratch_file 128M)
for mode in direct buffered other-buffered; do
  direct=$([ $mode = direct ] && echo true || echo false)
  counts="1 2 4"
  if [ $mode = other-buffered ]; then
    counts=2
    [ "$(loop_data_path false "$backing")" = mapped ] && export UBLKD_LOOP_BUFFERED=ring || export UBLKD_LOOP_BUFFERED=mapped
  fi
  for queues in $counts; do
    serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":$queues,\"direct_io\":$direct}"
    expect_queues "$queues"
    expect_data_path "$direct" "$backing"
    step "$mode ($(loop_data_path "$direct" "$backing")), $queues queues: bs 4k and 4k-256k at qd 1 and 64"
    fio_verify "$UBLK_DEV" --size=32M "${passes[@]}"
    jq -e '(.jobs | length) == 4 and all(.jobs[]; .write.io_bytes >= 8388608 and .read.io_bytes == .write.io_bytes)' \
      /var/tmp/fio.json >/dev/null || fail "not every pass wrote and verified its data: $(cat /var/tmp/fio.json)"
    stop_device
  done
done
pass
