#!/bin/bash
# Description: what is written through a ublkd loop device lands in the backing file: after
# random writes, the device's bytes and the backing file's bytes are identical.
source "$(dirname "$0")/../lib.sh"

backing=$(scratch_file 64M)
serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":2}"

step "random writes through $UBLK_DEV"
fio --name=fill --filename="$UBLK_DEV" --ioengine=io_uring --direct=1 --rw=randwrite --bsrange=4k-128k \
  --iodepth=32 --size=64M --io_size=48M --randrepeat=0 --output=/dev/null
stop_device

step "the backing file holds the device's bytes"
serve_device "{\"target\":\"loop\",\"path\":\"$backing\"}"
cmp "$UBLK_DEV" "$backing" || fail "device and backing file differ"
pass
