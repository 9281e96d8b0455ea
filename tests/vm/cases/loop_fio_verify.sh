#!/bin/bash
# Description: every byte a ublkd loop device stores reads back intact: fio randwrite with
# verify=crc32c at bs 4k and mixed 4k-256k, qd 1 and 64, on 1, 2 and 4 queues, with direct
# backing I/O (the kernel copies through ublkd's buffers) and buffered (through the file mapping).
source "$(dirname "$0")/../lib.sh"

backing=$(scratch_file 128M)
for direct in true false; do
  for queues in 1 2 4; do
    serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":$queues,\"direct_io\":$direct}"
    expect_queues "$queues"
    for bs in --bs=4k --bsrange=4k-256k; do
      for qd in 1 64; do
        step "direct_io $direct, $queues queues, $bs, qd $qd"
        fio_verify "$UBLK_DEV" "$bs" --iodepth="$qd" --size=32M
      done
    done
    stop_device
  done
done
pass
