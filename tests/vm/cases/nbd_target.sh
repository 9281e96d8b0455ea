#!/bin/bash
# Description: the nbd target against real servers on Unix sockets in the guest. TLS with a
# pre-shared key (and a wrong key refused). nbdkit memory
# (2 queues over multi-conn): fio verify, discard reaching the server (its log shows the trims),
# ext4 with metadata checksums across a remount. nbdkit file: the server SIGKILLed and restarted
# under fio (no error, the data verifies), then killed for good (I/O fails with EIO after
# reconnect_timeout, not a hang, and the device still stops). qemu-nbd on a qcow2: fio verify, then
# qemu-img check is clean. A bad URI, a missing socket and a missing export create nothing.
source "$(dirname "$0")/../lib.sh"

sock=/var/tmp/nbd.sock
# start_nbdkit ARGS...: nbdkit forks once its socket listens (-P writes the pid then).
start_nbdkit() {
  rm -f "$sock" /var/tmp/nbdkit.pid
  nbdkit -U "$sock" -P /var/tmp/nbdkit.pid "$@" || fail "nbdkit $* did not start"
  NBDKIT=$(cat /var/tmp/nbdkit.pid)
  defer "kill $NBDKIT 2>/dev/null || true"
}

step "errors: a bad URI, a missing socket, a missing export; nothing is created"
expect_serve_error() {
  local want=$1 out
  out=$(echo "$2" >/var/tmp/bad.json && ublkd serve --spec /var/tmp/bad.json 2>&1) && fail "ublkd serve accepted $2"
  expect_contains "$out" "$want"
  expect_no_devices
}
expect_serve_error "/uri" '{"target":"nbd","uri":"nbd://[::1"}'
expect_serve_error "No such file" '{"target":"nbd","uri":"nbd+unix:///?socket=/var/tmp/none.sock"}'
start_nbdkit --filter=exportname memory 64M exportname=disk exportname-strict=true
expect_serve_error "/uri" '{"target":"nbd","uri":"nbd+unix:///other?socket=/var/tmp/nbd.sock"}'
kill "$NBDKIT"

step "TLS (nbds+unix, a pre-shared key): the right key serves, a wrong one is a named error"
defer rm -f /var/tmp/keys.psk /var/tmp/wrong.psk
echo "ublkd:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >/var/tmp/keys.psk
echo "ublkd:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >/var/tmp/wrong.psk
start_nbdkit --tls=require --tls-psk=/var/tmp/keys.psk memory 64M
tls="\"uri\":\"nbds+unix:///?socket=$sock\",\"tls_username\":\"ublkd\""
expect_serve_error "TLS" '{"target":"nbd","uri":"nbd+unix:///?socket=/var/tmp/nbd.sock"}'
expect_serve_error "/uri" "{\"target\":\"nbd\",$tls,\"tls_psk_file\":\"/var/tmp/wrong.psk\"}"
serve_device "{\"target\":\"nbd\",$tls,\"tls_psk_file\":\"/var/tmp/keys.psk\"}"
fio_verify "$UBLK_DEV" --bs=64k --iodepth=8 --size=16M
stop_device
kill "$NBDKIT"

step "nbdkit memory, 2 queues: fio verify, discard reaches the server"
start_nbdkit --filter=log memory 256M logfile=/var/tmp/nbdkit.log
serve_device "{\"target\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$sock\",\"queues\":2}"
expect_queues 2
fio_verify "$UBLK_DEV" --bs=4k --iodepth=32 --size=32M
fio_verify "$UBLK_DEV" --bsrange=4k-256k --iodepth=8 --size=32M --offset=64M
[ "$(blockdev --getsize64 "$UBLK_DEV")" = $((256 << 20)) ] || fail "size $(blockdev --getsize64 "$UBLK_DEV")"
blkdiscard --offset $((128 << 20)) --length $((16 << 20)) "$UBLK_DEV"
grep -q 'Trim.*offset=0x8000000' /var/tmp/nbdkit.log || fail "no trim at 128M reached nbdkit: $(grep Trim /var/tmp/nbdkit.log | head)"

step "ext4 with metadata_csum: files survive a remount and fsck"
fs_fill "$UBLK_DEV"
fs_check "$UBLK_DEV"
stop_device
kill "$NBDKIT"

step "nbdkit file: the server SIGKILLed and back after 2 s under fio; no error, data verifies"
img=$(scratch_file 128M)
start_nbdkit file "$img"
serve_device "{\"target\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$sock\",\"reconnect_timeout\":20}"
start_verifier "$UBLK_DEV" 16M
wait_until 30 test -s /var/tmp/verifier.result || fail "no fio pass finished before the kill"
kill -KILL "$NBDKIT"
sleep 2 # the outage
start_nbdkit file "$img"
wait_until 60 eval '[ "$(cut -d" " -f1 /var/tmp/verifier.result)" -ge 3 ]' || fail "fio made no progress after the restart"
stop_verifier
grep -q 'reconnected' "$UBLK_OUT" || fail "the queue daemon did not say it reconnected: $(cat "$UBLK_OUT")"
expect_no_io_errors

step "the server gone for good: I/O fails with EIO after reconnect_timeout (3 s), not a hang"
stop_device
start_nbdkit file "$img"
serve_device "{\"target\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$sock\",\"reconnect_timeout\":3}"
kill -KILL "$NBDKIT"
start=$(date +%s)
if timeout 30 dd if="$UBLK_DEV" of=/dev/null bs=4k count=1 iflag=direct 2>/var/tmp/dd.err; then
  fail "a read succeeded with the server gone"
fi
took=$(($(date +%s) - start))
grep -q 'Input/output error' /var/tmp/dd.err || fail "the read did not fail with EIO: $(cat /var/tmp/dd.err)"
[ "$took" -le 10 ] || fail "the read took $took s to fail"
echo "  the read failed with EIO after $took s"
stop_device

step "qemu-nbd on a qcow2: fio verify, then qemu-img check is clean"
rm -f /var/tmp/q.qcow2 "$sock"
qemu-img create -q -f qcow2 /var/tmp/q.qcow2 128M
defer rm -f /var/tmp/q.qcow2
qemu-nbd -k "$sock" -f qcow2 -t -e 4 --discard=unmap --fork --pid-file=/var/tmp/qemu-nbd.pid /var/tmp/q.qcow2 ||
  fail "qemu-nbd did not start"
defer "kill \$(cat /var/tmp/qemu-nbd.pid) 2>/dev/null || true"
serve_device "{\"target\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$sock\",\"queues\":2}"
expect_queues 2
fio_verify "$UBLK_DEV" --bsrange=4k-128k --iodepth=16 --size=48M
stop_device
qemu_nbd=$(cat /var/tmp/qemu-nbd.pid)
kill "$qemu_nbd"
wait_until 10 process_gone "$qemu_nbd" || fail "qemu-nbd did not exit"
qemu-img check -q /var/tmp/q.qcow2 || fail "qemu-img check found errors"
pass
