#!/bin/bash
# Description: the buffered-backing benchmark, inside one guest boot, with a warm page cache:
# which way should ublkd loop move a buffered device's data by default? A file on ext4 on the
# guest's virtio disk (cache=none on the host) and a file on tmpfs, each served by the kernel's
# loop with --direct-io=off, by ublkd through its mapping of the file (UBLKD_LOOP_BUFFERED=mapped)
# and by ublkd with io_uring reads and writes of the page cache (UBLKD_LOOP_BUFFERED=ring). The
# file is read once before the runs, so they measure cache hits (the cold cache is disk.sh's).
# Writes results-ext4.json and results-tmpfs.json to the results share (UBLKD_BENCH_PARTS="ext4"
# or "tmpfs" measures one).
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
runtime=${UBLKD_BENCH_RUNTIME:-5}
reps=${UBLKD_BENCH_REPS:-5}
parts=" ${UBLKD_BENCH_PARTS:-ext4 tmpfs} "  # which backings to measure

# buffered_rows NAME FILE: the three devices over FILE, every workload, into NAME.json.
buffered_rows() {
  local name=$1 file=$2 kernel mapped ring path spec
  kernel=$(losetup --find --show --direct-io=off --sector-size 4096 "$file")
  defer losetup -d "$kernel"
  set_none "$kernel"
  spec="{\"target\":\"loop\",\"path\":\"$file\",\"queues\":1,\"depth\":128,\"direct_io\":false}"
  UBLKD_LOOP_BUFFERED=mapped serve_device "$spec"
  grep -q 'data path mapped$' "$UBLK_OUT" || fail "UBLKD_LOOP_BUFFERED=mapped: $(cat "$UBLK_OUT")"
  mapped=$UBLK_DEV
  UBLKD_LOOP_BUFFERED=ring serve_device "$spec"
  path=$(loop_data_path true)
  wait_until 5 grep -q "data path $path\$" "$UBLK_OUT" || fail "UBLKD_LOOP_BUFFERED=ring: $(cat "$UBLK_OUT")"
  ring=$UBLK_DEV
  cat "$file" >/dev/null
  run_rows "$name" "randread 4k 64" "randwrite 4k 64" "read 128k 16" "write 128k 16" "randread 4k 1" -- \
    "kernel $kernel" "ublkd-mapped $mapped" "ublkd-ring-$path $ring"
}

if [[ $parts == *" ext4 "* ]]; then
  step "a 512M file on ext4 on the virtio disk, warm cache"
  disk_backing
  losetup -d "$LOOPDEV"
  buffered_rows results-ext4 "$BACKING"
fi
[[ $parts == *" tmpfs "* ]] || pass

step "a 512M file on tmpfs, warm cache"
mkdir -p /mnt/tmpfs
mount -t tmpfs -o size=600M tmpfs /mnt/tmpfs
defer "umount /mnt/tmpfs"
dd if=/dev/urandom of=/mnt/tmpfs/backing.img bs=1M count=512 status=none
buffered_rows results-tmpfs /mnt/tmpfs/backing.img
pass
