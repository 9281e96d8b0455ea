#!/bin/bash
# Description: ublkd under AddressSanitizer, LeakSanitizer and UBSan serves null and both loop data
# paths through fio verify and a stop, recovers a device whose daemon was killed (`serve
# --recover`) and hands one over (SIGUSR2, where the kernel has QUIESCE), and reports nothing.
source "$(dirname "$0")/../lib.sh"
export UBLKD_BIN=$UBLKD_BUILD/service/ublkd-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
[ -x "$UBLKD_BIN" ] || skip "no $UBLKD_BIN (configured with -DUBLKD_SANITIZED_BINARY=OFF)"

step "null: random reads and writes (null keeps no data, so nothing to verify)"
serve_device '{"target":"null","size":"1G","queues":2}'
fio --name=null --filename="$UBLK_DEV" --ioengine=io_uring --direct=1 --rw=randrw --bs=4k --iodepth=32 \
  --size=64M --output=/dev/null
stop_device

backing=$(scratch_file 64M)
for direct in true false; do
  step "loop, direct_io $direct: fio verify"
  serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":2,\"direct_io\":$direct}"
  fio_verify "$UBLK_DEV" --bsrange=4k-128k --iodepth=32 --size=16M
  stop_device
done

step "serve --recover takes over a device whose daemon was SIGKILLed; the data stays"
echo "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":2}" >/var/tmp/recover.json
serve_device "$(cat /var/tmp/recover.json)"
fio_verify "$UBLK_DEV" --size=16M --do_verify=0
kill -KILL "$UBLK_PID"
wait "$UBLK_PID" || true
# recover: a new `serve --recover` takes the device over; the data written before reads back.
recover() {
  "$UBLKD_BIN" serve --spec /var/tmp/recover.json --recover "${UBLK_DEV#/dev/ublkb}" >/var/tmp/recover.out 2>&1 &
  UBLK_PID=$!
  defer "kill -TERM $UBLK_PID 2>/dev/null; wait $UBLK_PID 2>/dev/null"
  wait_until 30 grep -q "^$UBLK_DEV" /var/tmp/recover.out || fail "no recovery: $(cat /var/tmp/recover.out)"
  fio_verify "$UBLK_DEV" --size=16M --verify_only=1
}
recover
if ublkd features | grep -qw QUIESCE; then
  step "SIGUSR2 hands the device over: the daemon exits 0, the device waits QUIESCED for the next"
  kill -USR2 "$UBLK_PID"
  wait "$UBLK_PID" || fail "the handing-over daemon exited $?: $(cat /var/tmp/recover.out)"
  recover
fi
stop_device
grep 'ERROR: \(Address\|Leak\)Sanitizer\|runtime error' /var/tmp/recover.out && fail "sanitizer report in serve --recover"

step "a spec the daemon rejects at setup leaves no report either"
echo '{"target":"loop","path":"/nonexistent.img"}' >/var/tmp/bad.json
"$UBLKD_BIN" serve --spec /var/tmp/bad.json 2>/var/tmp/bad.err && fail "a missing backing file was accepted"
grep -q 'ERROR: \(Address\|Leak\)Sanitizer\|runtime error' /var/tmp/bad.err && fail "sanitizer report: $(cat /var/tmp/bad.err)"
pass
