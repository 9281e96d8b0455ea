#!/bin/bash
# Description: a ublkd null device serves fio randread and randwrite at qd 1 and 128 on 1 to 4
# queues without an error.
source "$(dirname "$0")/../lib.sh"

for queues in 1 2 3 4; do
  serve_device "{\"target\":\"null\",\"size\":\"4G\",\"queues\":$queues}"
  expect_queues "$queues"
  for rw in randread randwrite; do
    for qd in 1 128; do
      step "$queues queues, $rw, qd $qd"
      fio --name=null --filename="$UBLK_DEV" --ioengine=io_uring --direct=1 --rw=$rw --bs=4k --iodepth=$qd \
        --runtime=2 --time_based --output-format=terse --terse-version=3 >/var/tmp/fio.out ||
        fail "fio exited $?"
      [ "$(cut -d';' -f5 /var/tmp/fio.out)" = 0 ] || fail "fio reported an error"
    done
  done
  stop_device
done
pass
