#!/bin/bash
# Description: the backend benchmark, inside one guest boot. NBD: ublkd-nbd against the kernel's
# nbd client (nbd-client), both on one nbdkit memory server over a Unix socket, one connection
# each. RBD: ublkd-rbd against the kernel's rbd driver (krbd) and Ceph's rbd-nbd, on one image of
# the guest's single-node cluster (tests/vm/ceph.sh). fio 4k randread and randwrite at qd 64 and
# 128k sequential read at qd 16, IOPS; the devices take turns, three repetitions.
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/../vm/ceph.sh"
runtime=${UBLKD_BENCH_RUNTIME:-6}
reps=${UBLKD_BENCH_REPS:-3}
out=$UBLKD_RESULTS
workloads=("randread 4k 64" "randwrite 4k 64" "read 128k 16")

# iops DEV RW BS QD
iops() {
  fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw="$2" --bs="$3" --iodepth="$4" \
    --size=256M --runtime="$runtime" --ramp_time=1 --time_based --norandommap --randrepeat=0 \
    --output-format=json |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(round(j["read"]["iops"] + j["write"]["iops"]))'
}
set_none() { echo none >"/sys/block/$(basename "$(readlink -f "$1")")/queue/scheduler"; }

results=()
# compare BACKEND NAME=DEV...: every workload on every device in turn, $reps times.
compare() {
  local backend=$1 rep w entry name dev
  shift
  for dev in "$@"; do set_none "${dev#*=}"; done
  for rep in $(seq "$reps"); do
    for w in "${workloads[@]}"; do
      set -- $w "$@"
      local rw=$1 bs=$2 qd=$3 row=""
      shift 3
      for entry in "$@"; do
        name=${entry%%=*} dev=${entry#*=}
        row+="${row:+,}\"$name\":$(iops "$dev" "$rw" "$bs" "$qd")"
      done
      echo "rep $rep $backend $rw $bs qd $qd: $row"
      results+=("{\"rep\":$rep,\"backend\":\"$backend\",\"rw\":\"$rw\",\"bs\":\"$bs\",\"qd\":$qd,\"iops\":{$row}}")
    done
  done
}

step "NBD: nbdkit memory on a Unix socket; nbd-client and ublkd-nbd, one connection each"
modprobe nbd nbds_max=2
rm -f /var/tmp/bench.sock
nbdkit -U /var/tmp/bench.sock -P /var/tmp/nbdkit.pid memory 1G || fail "nbdkit did not start"
defer "kill \$(cat /var/tmp/nbdkit.pid); rm -f /var/tmp/nbdkit.pid"
nbd-client -unix /var/tmp/bench.sock /dev/nbd0 -b 4096 -C 1 >/dev/null || fail "nbd-client failed"
defer "nbd-client -d /dev/nbd0 >/dev/null"
serve_device '{"target":"nbd","uri":"nbd+unix:///?socket=/var/tmp/bench.sock","queues":1,"depth":128}'
dd if=/dev/urandom of="$UBLK_DEV" bs=1M count=256 oflag=direct status=none  # reads hit written memory
compare nbd nbd-client=/dev/nbd0 ublkd-nbd="$UBLK_DEV"
stop_device

step "RBD: an image each (no exclusive-lock handoffs between them) for krbd, rbd-nbd and ublkd-rbd"
start_ceph
for image in krbd rbd-nbd ublkd; do rbd create --size 512M "rbd/$image" || fail "cannot create rbd/$image"; done
modprobe rbd
krbd=$(rbd device map rbd/krbd) || fail "rbd map failed"
defer "rbd device unmap $krbd"
rbdnbd=$(rbd-nbd map rbd/rbd-nbd) || fail "rbd-nbd map failed"
defer "rbd-nbd unmap $rbdnbd"
serve_device "{\"target\":\"rbd\",\"image\":\"ublkd\",\"ceph_conf\":\"$CEPH_CONF\",\"queues\":1,\"depth\":128}"
for dev in "$krbd" "$rbdnbd" "$UBLK_DEV"; do
  dd if=/dev/urandom of="$dev" bs=1M count=256 oflag=direct status=none  # reads hit written objects
done
compare rbd krbd="$krbd" rbd-nbd="$rbdnbd" ublkd-rbd="$UBLK_DEV"
stop_device

(IFS=,; echo "{\"kernel\":\"$(uname -r)\",\"runtime\":$runtime,\"results\":[${results[*]}]}") >"$out/results.json"
pass
