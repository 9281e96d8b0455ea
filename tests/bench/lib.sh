# What the guest benchmarks share (sourced after tests/vm/lib.sh).

# set_none DEV: the block device's I/O scheduler is none (as for every device measured).
set_none() { echo none >"/sys/block/$(basename "$1")/queue/scheduler"; }

# disk_backing: a 512M file of random data (no unwritten extents) on ext4 on the guest's scratch
# virtio disk, and the kernel's loop over it with direct I/O and 4 KiB sectors; sets BACKING and
# LOOPDEV. The disk is cache=none on the host when tests/bench/run boots the guest.
disk_backing() {
  local disk
  disk=$(scratch_disk)
  mkfs.ext4 -q -F "$disk"
  mkdir -p /mnt/bench
  mount "$disk" /mnt/bench
  defer "umount /mnt/bench"
  BACKING=/mnt/bench/backing.img
  dd if=/dev/urandom of="$BACKING" bs=1M count=512 oflag=direct status=none
  set_none "$disk"
  LOOPDEV=$(losetup --find --show --direct-io=on --sector-size 4096 "$BACKING")
  defer losetup -d "$LOOPDEV"
  [ "$(cat "/sys/block/$(basename "$LOOPDEV")/loop/dio")" = 1 ] || fail "kernel loop did not get direct I/O"
  set_none "$LOOPDEV"
}

# fio_point DEV RW BS QD -> "iops clat_mean_us": one fio run of $runtime s after a 1 s ramp
fio_point() {
  fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw="$2" --bs="$3" --iodepth="$4" \
    --runtime="$runtime" --ramp_time=1 --time_based --norandommap --randrepeat=0 --output-format=json |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; d=j["read"] if j["read"]["io_bytes"] else j["write"]; print(round(d["iops"]), round(d["clat_ns"]["mean"]/1000, 1))'
}

# run_rows NAME WORKLOAD... -- DEVICE...: every workload ("rw bs qd") on every device ("name
# path"), $reps times in a rotating order, into $UBLKD_RESULTS/NAME.json. With COLD set, the page cache is
# dropped before each run.
run_rows() {
  local name=$1 workloads=() devices=() results=() rep w i n line m rw bs qd
  shift
  while [ "$1" != -- ]; do workloads+=("$1"); shift; done
  shift
  devices=("$@")
  n=${#devices[@]}
  for rep in $(seq "$reps"); do
    for w in "${workloads[@]}"; do
      set -- $w
      rw=$1 bs=$2 qd=$3
      line="$name rep $rep $rw $bs qd $qd:"
      # Rotate who goes first, so no device always runs on a cache or a disk warmed by another.
      for ((i = 0; i < n; i++)); do
        set -- ${devices[$(((i + rep) % n))]}
        [ -n "${COLD:-}" ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
        m=$(fio_point "$2" "$rw" "$bs" "$qd")
        line+=" $1 $m |"
        results+=("{\"rep\":$rep,\"rw\":\"$rw\",\"bs\":\"$bs\",\"qd\":$qd,\"device\":\"$1\",\"iops\":${m% *},\"clat_us\":${m#* }}")
      done
      echo "$line"
    done
  done
  (IFS=,; echo "{\"kernel\":\"$(uname -r)\",\"runtime\":$runtime,\"results\":[${results[*]}]}") >"$UBLKD_RESULTS/$name.json"
}
