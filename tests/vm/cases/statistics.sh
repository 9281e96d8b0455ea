#!/bin/bash
# Description: a device's statistics agree with the kernel's own counters (/sys/block/*/stat) to
# the request and the byte after fio verify and a discard; they show requests in flight under
# load and latencies after it; they survive a killed queue daemon; anyone may read them (bus and
# ublkctl), in a table, JSON, Prometheus text (written atomically, rewritten with --watch) and
# `ublkctl top`; bad arguments are named; the file goes with the device.
source "$(dirname "$0")/../lib.sh"

mkdir -p /var/lib/ublk
truncate -s 128M /var/lib/ublk/stats.img
defer rm -f /var/lib/ublk/stats.img
create_device stats '{"target":"loop","path":"/var/lib/ublk/stats.img","queues":2}'
udevadm settle --timeout=10 || true
sysstat=/sys/block/${DEV#/dev/}/stat
json() { ublkctl stats stats --json; }
# kernel FIELD: a field of the kernel's stat file (1 reads, 3 read sectors, 5 writes, 7 write
# sectors, 12 discards, 14 discard sectors).
kernel() { awk -v f="$1" '{print $f}' "$sysstat"; }
ours() { jq -r "$1" <<<"$2"; }

step "fio verify and a discard: ublkd counts what the kernel counts"
b=$(json)
k_reads=$(kernel 1) k_rsect=$(kernel 3) k_writes=$(kernel 5) k_wsect=$(kernel 7) k_disc=$(kernel 12)
fio_verify "$DEV" --size=24M
blkdiscard --offset 64M --length 8M "$DEV"
a=$(json)
check() { # WHAT OURS KERNEL
  [ "$2" = "$3" ] || fail "$1: ublkd counted $2, the kernel $3"
  echo "  $1: $2"
}
check "reads" $(($(ours .read.ops "$a") - $(ours .read.ops "$b"))) $(($(kernel 1) - k_reads))
check "bytes read" $(($(ours .read.bytes "$a") - $(ours .read.bytes "$b"))) $((($(kernel 3) - k_rsect) * 512))
check "writes" $(($(ours .write.ops "$a") - $(ours .write.ops "$b"))) $(($(kernel 5) - k_writes))
check "bytes written" $(($(ours .write.bytes "$a") - $(ours .write.bytes "$b"))) $((($(kernel 7) - k_wsect) * 512))
check "discards" $(($(ours .discard.ops "$a") - $(ours .discard.ops "$b"))) $(($(kernel 12) - k_disc))
[ "$(ours .write.bytes "$a")" -ge $((24 << 20)) ] || fail "fio wrote 24M, ublkd counted $(ours .write.bytes "$a") bytes"
[ "$(ours '[.[] | objects | .errors] | add' "$a")" = 0 ] || fail "errors counted: $a"
[ "$(ours .in_flight "$a")" = 0 ] || fail "requests in flight with no I/O: $(ours .in_flight "$a")"
[ "$(ours .queues "$a")" = 2 ] || fail "queues: $(ours .queues "$a")"
# Over the interval since the sample before fio: fio's writes, each through the backing file.
p50=$(ours .write.service_usec.p50 "$a") bp50=$(ours .write.backend_usec.p50 "$a")
awk -v s="$p50" -v b="$bp50" 'BEGIN { exit !(s > 0 && b > 0 && b <= s) }' ||
  fail "write latency p50: service $p50 us, backend $bp50 us"
echo "  write p50: $p50 us in ublkd, $bp50 us of it in the backend; p99 $(ours .write.service_usec.p99 "$a") us"
[ "$(ours '[.write.service_histogram[][1]] | add' "$a")" = "$(ours .write.ops "$a")" ] ||
  fail "the write histogram does not count every write"

step "under load the requests in flight show, and go back to none"
fio --name=load --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=32 \
  --runtime=20 --time_based --output=/dev/null &
load=$!
defer "kill $load 2>/dev/null || true"
busy() { [ "$(json | jq .in_flight)" -gt 0 ]; }
wait_until 15 busy || fail "no request in flight seen under fio at depth 32"
rate=$(json | jq .read.ops_per_sec)
kill "$load"
wait "$load" || true
idle() { [ "$(json | jq .in_flight)" = 0 ]; }
wait_until 5 idle || fail "requests still in flight after fio ended: $(json | jq .in_flight)"
echo "  reads per second under load: $rate"

step "a killed queue daemon: the counters go on from where they were"
b=$(json)
kill_queue_daemon stats
wait_until 30 prop_is stats RestartCount 1 || fail "stats did not recover: $(ublkctl status stats)"
dd if="$DEV" of=/dev/null bs=4k count=100 iflag=direct status=none
a=$(json)
[ "$(ours .since_usec "$a")" = "$(ours .since_usec "$b")" ] || fail "the counters started again"
[ $(($(ours .read.ops "$a") - $(ours .read.ops "$b"))) -ge 100 ] ||
  fail "reads went from $(ours .read.ops "$b") to $(ours .read.ops "$a") over 100 more"

step "anyone may read them: on the bus and through ublkctl, not delete"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
as_nobody busctl --system --json=short call org.ublk.Manager /org/ublk/Device/stats org.ublk.Device GetStatistics \
  >/var/tmp/bus.json || fail "nobody cannot call GetStatistics"
defer rm -f /var/tmp/bus.json
jq -e '.data[0].write.data.ops.data > 0 and .data[0].interval_sec.type == "d"' /var/tmp/bus.json >/dev/null ||
  fail "GetStatistics a{sv}: $(head -c 400 /var/tmp/bus.json)"
as_nobody ublkctl stats stats | tee /var/tmp/table | head -n 4
defer rm -f /var/tmp/table
grep -q "^stats ($DEV): 2 queues" /var/tmp/table || fail "the table's heading: $(head -n 1 /var/tmp/table)"
if as_nobody ublkctl delete stats 2>/dev/null; then fail "nobody deleted a device"; fi

step "Prometheus text: written atomically, rewritten with --watch"
ublkctl stats --prometheus --output /var/tmp/ublk.prom
defer rm -f /var/tmp/ublk.prom /var/tmp/ublk.prom.new
writes=$(json | jq .write.ops)
grep -qx "ublk_requests_total{device=\"stats\",op=\"write\"} $writes" /var/tmp/ublk.prom ||
  fail "no write counter of $writes: $(grep 'op="write"' /var/tmp/ublk.prom | head -n 3)"
grep -qx "ublk_service_seconds_count{device=\"stats\",op=\"write\"} $writes" /var/tmp/ublk.prom ||
  fail "the write histogram's count is not $writes"
ublkctl stats --prometheus --output /var/tmp/ublk.prom --watch 1 &
exporter=$!
defer "kill $exporter 2>/dev/null || true"
dd if="$DEV" of=/dev/null bs=4k count=10 iflag=direct status=none
reads=$(json | jq .read.ops)
rewritten() { grep -qx "ublk_requests_total{device=\"stats\",op=\"read\"} $reads" /var/tmp/ublk.prom; }
wait_until 5 rewritten || fail "--watch did not rewrite the file with $reads reads"
kill -TERM "$exporter"
wait "$exporter" || fail "the exporter ended with $? on SIGTERM"
[ -z "$(ls /var/tmp/ublk.prom.* 2>/dev/null)" ] || fail "a temporary file was left: $(ls /var/tmp/ublk.prom.*)"

step "ublkctl top: two refreshes with the device in each"
ublkctl top --iterations 2 --interval 1 --sort name >/var/tmp/top
defer rm -f /var/tmp/top
[ "$(grep -c "^stats  *$DEV  *live" /var/tmp/top)" = 2 ] || fail "top: $(cat /var/tmp/top)"

step "bad arguments are named, and change nothing"
expect_exit 4 "no device named 'nosuch'" ublkctl stats nosuch
expect_exit 2 "--watch: '0' is not a number of seconds" ublkctl stats stats --watch 0
expect_exit 2 "--sort: 'fast' is not" ublkctl top --sort fast
expect_exit 2 "--json and --prometheus" ublkctl stats stats --json --prometheus
expect_exit 2 "--output is for --prometheus" ublkctl stats stats --output /var/tmp/x

step "the statistics go with the device"
ublkctl delete stats
[ ! -e /run/ublkd/devices/stats.stats ] || fail "/run/ublkd/devices/stats.stats is left"
pass
