#!/bin/bash
# Description: a ublkd null device serves fio randread and randwrite at qd 1 and 128 on 1 to 4
# queues without an error.
source "$(dirname "$0")/../lib.sh"

# One 1 s run per direction and queue depth, in turn (--stonewall), in one fio.
runs=()
for rw in randread randwrite; do
  for qd in 1 128; do runs+=(--name="$rw-qd$qd" --stonewall --rw="$rw" --iodepth="$qd"); done
done

for queues in 1 2 3 4; do
  serve_device "{\"target\":\"null\",\"size\":\"4G\",\"queues\":$queues}"
  expect_queues "$queues"
  step "$queues queues: randread and randwrite at qd 1 and 128"
  fio_checked /var/tmp/fio.json --filename="$UBLK_DEV" --ioengine=io_uring --direct=1 --bs=4k \
    --runtime=1 --time_based "${runs[@]}" >/dev/null
  jq -e '[.jobs[] | select(.read.total_ios + .write.total_ios > 0)] | length == 4' /var/tmp/fio.json >/dev/null ||
    fail "not every run did I/O: $(cat /var/tmp/fio.json)"
  stop_device
done
pass
