# Helpers for guest tests (sourced, bash). A test reads top-down as its scenario:
#   step "what happens next"; ...; expect ...; pass
# Exit codes: 0 pass, 1 fail, 4 skip. Cleanups registered with `defer` run in reverse order on
# any exit, so a failing test still tears down what it made.
set -euo pipefail

_deferred=()
_run_deferred() {
  local rc=$? i
  for ((i = ${#_deferred[@]} - 1; i >= 0; i--)); do eval "${_deferred[i]}" || true; done
  exit "$rc"
}
trap _run_deferred EXIT
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR

# defer CMD...: run CMD when the test exits, whatever the outcome.
defer() { _deferred+=("$*"); }

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 4; }
pass() { echo "PASS: $(basename "$0" .sh)"; exit 0; }

expect_module() { grep -qw "^$1" /proc/modules || fail "module $1 is not loaded"; }
expect_char_device() { [ -c "$1" ] || fail "$1 is not a character device"; }
# expect_contains TEXT WORD: WORD appears as a whole word in TEXT.
expect_contains() { grep -qw -- "$2" <<<"$1" || fail "expected '$2' in: $1"; }

# scratch_file SIZE: a new sparse file in /var/tmp (guest tmpfs overlay), removed at exit.
scratch_file() {
  local f
  f=$(mktemp /var/tmp/ublkvm.XXXXXX)
  truncate -s "$1" "$f"
  defer rm -f "$f"
  echo "$f"
}

# scratch_disk: the guest's virtio disk with 4 KiB logical sectors (tests/vm/session.sh), fresh
# each boot. Prints /dev/vdX.
scratch_disk() {
  local serial
  for serial in /sys/block/vd*/serial; do
    [ "$(<"$serial")" = ublkvm-4k ] || continue
    serial=${serial%/serial}
    echo "/dev/${serial##*/}"
    return 0
  done
  fail "no scratch disk (serial ublkvm-4k) in /sys/block"
}

# persist_disk: the disk a multi-boot test keeps from boot to boot (tests/vm/run --persist-disk).
# Prints /dev/vdX; skips (exit 4) when the guest has none.
persist_disk() {
  local serial
  for serial in /sys/block/vd*/serial; do
    [ "$(<"$serial")" = ublkvm-persist ] || continue
    serial=${serial%/serial}
    echo "/dev/${serial##*/}"
    return 0
  done
  skip "no persistent disk (serial ublkvm-persist): run through tests/vm/poweroff-cycles"
}

# null_blk_device NAME SIZE_MB BLOCK_SIZE DISCARD(0|1): a memory-backed null_blk disk made through
# configfs, removed at exit. Sets NULLB_DEV (not in a subshell: the removal is deferred here).
null_blk_device() {
  local dir=/sys/kernel/config/nullb/$1
  mkdir "$dir" || fail "cannot make null_blk device $1"
  defer "echo 0 >$dir/power; rmdir $dir"
  echo "$2" >"$dir/size"
  echo 1 >"$dir/memory_backed"
  echo "$3" >"$dir/blocksize"
  echo "$4" >"$dir/discard"
  echo 1 >"$dir/power" || fail "cannot power on null_blk device $1"
  NULLB_DEV=/dev/$1
  [ -b "$NULLB_DEV" ] || NULLB_DEV=/dev/nullb$(<"$dir/index")
  [ -b "$NULLB_DEV" ] || fail "null_blk device $1 has no block device node"
}

# fio_checked OUT_JSON [FIO OPTION...]: runs fio with JSON output into OUT_JSON; fails on an I/O
# error or a verify mismatch. Prints the job's longest completion latency (read or write) in ms.
fio_checked() {
  local out=$1
  shift
  fio --output-format=json --output="$out" "$@" || fail "fio exited $?: $(tail -n 20 "$out")"
  # One jq for both (a program start is a quarter second in the guest): false on any job's error.
  jq -e 'if all(.jobs[]; .error == 0) then [.jobs[] | .read.clat_ns.max, .write.clat_ns.max] | max / 1e6
    else false end' "$out" || fail "fio reported errors: $(tail -n 20 "$out")"
}

# fio_verify DEVICE [FIO OPTION...]: random writes, then a read-back checked with crc32c.
# Fails on any I/O error or mismatch; extra options (bs, iodepth, size ...) override defaults.
# Options may name several jobs (--name=A ... --name=B --stonewall ...): one fio then runs them in
# turn, each a write-and-verify pass of its own, without a fio start per pass.
fio_verify() {
  local dev=$1 job=(--name=verify)
  shift
  [[ " $* " == *" --name="* ]] && job=()
  fio_checked /var/tmp/fio.json --filename="$dev" --ioengine=io_uring --direct=1 --rw=randwrite \
    --bs=4k --iodepth=16 --size=64M --verify=crc32c --verify_fatal=1 --do_verify=1 "$@" "${job[@]}" >/dev/null
}

# serve_device SPEC_JSON [SERVE_ARG...]: starts `ublkd serve` (or $UBLKD_BIN serve) on the spec, with the
# extra arguments, in the background and waits (10 s at most) for the /dev/ublkbN it prints. Sets UBLK_DEV, UBLK_PID and UBLK_OUT (the daemon's output);
# the device is stopped at exit if the test has not stopped it itself.
serve_device() {
  local spec out i
  spec=$(mktemp /var/tmp/ublkvm-spec.XXXXXX)
  out=$(mktemp /var/tmp/ublkvm-serve.XXXXXX)
  UBLK_OUT=$out
  defer rm -f "$spec" "$out"
  echo "$1" >"$spec"
  "${UBLKD_BIN:-ublkd}" serve --spec "$spec" "${@:2}" >"$out" 2>&1 &
  UBLK_PID=$!
  defer "kill -TERM $UBLK_PID 2>/dev/null; wait $UBLK_PID 2>/dev/null"
  for i in $(seq 100); do
    UBLK_DEV=$(grep -m1 '^/dev/ublkb' "$out" || true)
    [ -n "$UBLK_DEV" ] && break
    kill -0 "$UBLK_PID" 2>/dev/null || { wait "$UBLK_PID" || true; fail "ublkd serve exited early: $(cat "$out")"; }
    sleep 0.1
  done
  [ -n "$UBLK_DEV" ] || fail "ublkd serve printed no device in 10 s: $(cat "$out")"
  [ -b "$UBLK_DEV" ] || fail "$UBLK_DEV is not a block device"
}

# expect_queues N: the served device has N hardware queues (needs N vCPUs: the kernel clamps).
expect_queues() {
  local have
  have=$(ls "/sys/block/${UBLK_DEV#/dev/}/mq" | wc -l)
  [ "$have" -eq "$1" ] || fail "$UBLK_DEV has $have queues, expected $1 (guest has $(nproc) CPUs)"
}

# loop_data_path DIRECT_IO [BACKING]: the data path ublkd gives a loop device on this kernel
# (service/targets/loop_target.cpp). O_DIRECT: zero-copy where the kernel has AUTO_BUF_REG, else
# copy. Buffered: io_uring reads and writes of the page cache (zero-copy) where the kernel has
# AUTO_BUF_REG and BACKING is not on tmpfs, else the file mapping; UBLKD_LOOP_BUFFERED overrides.
loop_data_path() {
  local zc=false ring=false
  ublkd features | grep -qw AUTO_BUF_REG && zc=true
  if [ "$1" != true ]; then
    case ${UBLKD_LOOP_BUFFERED:-} in
      ring) ring=true ;;
      mapped) ;;
      *) $zc && [ "$(stat -f -c %T "$2")" != tmpfs ] && ring=true ;;
    esac
    $ring || { echo mapped; return; }
  fi
  if $zc; then echo zero-copy; else echo copy; fi
}
# expect_data_path DIRECT_IO [BACKING]: the device served by serve_device said it moves its data so.
expect_data_path() {
  local want
  want=$(loop_data_path "$@")
  wait_until 5 grep -q "data path" "$UBLK_OUT" || fail "ublkd serve did not say its data path: $(cat "$UBLK_OUT")"
  grep -q "data path $want\$" "$UBLK_OUT" || fail "expected data path $want on $(uname -r): $(grep 'data path' "$UBLK_OUT")"
}

# stop_device: SIGTERM to the served device's daemon; it must exit 0 and leave no device behind.
stop_device() {
  local id=${UBLK_DEV#/dev/ublkb} rc=0
  kill -TERM "$UBLK_PID"
  wait "$UBLK_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "ublkd serve exited $rc on SIGTERM"
  [ ! -e "$UBLK_DEV" ] || fail "$UBLK_DEV still exists after stop"
  [ ! -e "/dev/ublkc$id" ] || fail "/dev/ublkc$id still exists after stop"
}

# --- systemd-mode helpers: ublkd on the system bus ---

# ublk_call METHOD [dbus-send ARG...]: calls org.ublk.Manager.METHOD; prints the reply, or
# "Error <name>: <message>" on failure (and returns non-zero).
ublk_call() {
  local method=$1
  shift
  dbus-send --system --print-reply --reply-timeout=120000 --dest=org.ublk.Manager /org/ublk/Manager \
    "org.ublk.Manager.$method" "$@" 2>&1
}

# expect_bus_error ERROR_NAME METHOD [ARG...]: the call fails with exactly that named error.
expect_bus_error() {
  local want=$1 out
  shift
  if out=$(ublk_call "$@"); then fail "$2 succeeded, expected $want: $out"; fi
  grep -q "^Error $want:" <<<"$out" || fail "expected $want, got: $out"
  echo "  $want: ${out#Error $want: }"
}

# ublk_devices: the ublkb devices that exist, one per line.
ublk_devices() { ls /dev/ublkb* 2>/dev/null || true; }

# expect_no_devices: no ublk device and no queue daemon is left.
expect_no_devices() {
  [ -z "$(ublk_devices)" ] || fail "devices left behind: $(ublk_devices)"
  ! pgrep -f 'ublkd serve' >/dev/null || fail "queue daemons left behind: $(pgrep -af 'ublkd serve')"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds; non-zero if it never
# did within SECONDS (the caller then fails with what it expected).
wait_until() {
  local tries=$(($1 * 5)) i
  shift
  for ((i = 0; i < tries; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

# ios_done STAT: the requests a block device has completed, reads and writes, from its sysfs STAT
# file (read by bash itself: it is polled).
ios_done() {
  local reads writes
  read -r reads _ _ _ writes _ <"$1"
  echo $((reads + writes))
}
ios_reach() { [ "$(ios_done "$1")" -ge "$2" ]; }

# expect_io_flows DEVICE [COUNT]: DEVICE (a /dev path or a link to one) completes COUNT (256) more
# requests within 30 s: I/O goes on through whatever just happened to the device.
expect_io_flows() {
  local dev stat want
  dev=$(realpath "$1")
  stat=/sys/block/${dev#/dev/}/stat
  want=$(($(ios_done "$stat") + ${2:-256}))
  wait_until 30 ios_reach "$stat" "$want" || fail "I/O on $1 stalled: $(ios_done "$stat") requests done, waited for $want"
}

# For wait_until, which runs its command anew each time (a "$(...)" argument would be expanded once):
# output_is TEXT CMD...: CMD prints exactly TEXT. state_is NAME STATE, prop_is NAME KEY VALUE: the
# device's state or property. process_gone PID: PID has exited.
output_is() { [ "$("${@:2}" 2>/dev/null)" = "$1" ]; }
state_is() { [ "$(ublk_state "$1")" = "$2" ]; }
prop_is() { [ "$(ublk_prop "$1" "$2")" = "$3" ]; }
process_gone() { ! kill -0 "$1" 2>/dev/null; }

# ublk_state NAME: the device's state as ublkd reports it (live, failed, ...), or nothing.
ublk_state() { ublkctl status "$1" --json 2>/dev/null | jq -r .State 2>/dev/null; }

# wait_for_link NAME: /dev/ublk/by-name/NAME appears within 10 s.
wait_for_link() {
  udevadm settle --timeout=10 || true
  wait_until 10 test -e "/dev/ublk/by-name/$1" ||
    fail "/dev/ublk/by-name/$1 did not appear: $(ls -l /dev/ublk/by-name 2>&1)"
}

# expect_exit CODE TEXT COMMAND...: COMMAND exits with CODE and says TEXT (stdout or stderr).
expect_exit() {
  local code=$1 text=$2 out rc=0
  shift 2
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" = "$code" ] || fail "$* exited $rc, expected $code: $out"
  grep -q -- "$text" <<<"$out" || fail "$* did not say '$text': $out"
  echo "  $*: exit $rc: $(head -n 1 <<<"$out")"
}

# dump_state_after SECONDS: should the test still run SECONDS from now (a hang the harness would
# only kill), print what every ublkd, fio and dd thread waits on, and ublkd's last words.
dump_state_after() {
  (
    sleep "$1" &
    trap 'kill $! 2>/dev/null; exit 0' TERM
    wait $!
    {
      echo "--- still running after $1 s: threads of ublkd, fio, dd, dmsetup"
      ps -eLo pid,tid,ppid,stat,wchan:32,comm,args | grep -E ' (ublkd|fio|dd|dmsetup|iou-wrk)' | grep -v grep || true
      echo "--- journal of ublkd"
      journal -u ublkd | tail -n 40 || true
    } >&2
  ) &
  defer "kill $! 2>/dev/null || true"
}

# journal [JOURNALCTL ARG...]: the journal's messages since this case began (UBLKVM_JOURNAL_SINCE,
# set by the harness), so an earlier case in the same boot cannot answer for this one.
journal() { journalctl --no-pager -o cat --since="${UBLKVM_JOURNAL_SINCE:?not run by the harness}" "$@"; }

# --- recovery helpers ---

# kill_queue_daemon NAME: SIGKILL to the queue daemon(s) of ublkd's device NAME (the serving one
# or one recovering it); non-zero if there was none.
kill_queue_daemon() { pkill -KILL -f "ublkd serve --spec /run/ublkd/devices/$1.spec.json"; }

# kill_until_failed NAME: SIGKILLs each queue daemon of device NAME as soon as it exists, until
# the device is failed (60 s at most). Sets KILLS to the number of daemons killed.
kill_until_failed() {
  local start=$SECONDS pid
  KILLS=0
  until state_is "$1" failed || [ $((SECONDS - start)) -ge 60 ]; do
    if pid=$(pgrep -f "ublkd serve --spec /run/ublkd/devices/$1.spec.json"); then
      kill -KILL $pid && KILLS=$((KILLS + 1))
    fi
  done
}

# unit_loop_device NAME SIZE [SPEC_EXTRA]: a loop device through ublk@NAME on a new SIZE file in
# /var/lib/ublk (SPEC_EXTRA: more spec members, e.g. ',"scheduler":"none"'), up to its by-name
# link; the unit, spec and file go at exit.
unit_loop_device() {
  mkdir -p /var/lib/ublk /etc/ublk.d
  truncate -s "$2" "/var/lib/ublk/$1.img"
  echo "{\"target\":\"loop\",\"path\":\"/var/lib/ublk/$1.img\"${3:-}}" >"/etc/ublk.d/$1.json"
  defer rm -f "/var/lib/ublk/$1.img" "/etc/ublk.d/$1.json"
  systemctl start "ublk@$1"
  defer systemctl stop "ublk@$1"
  wait_for_link "$1"
}

# fs_fill DEVICE: a new ext4 (metadata checksums on) with three 4 MiB random files, their sums
# kept; unmounted again. fs_check DEVICE: e2fsck finds nothing, and the files read back the same.
fs_fill() {
  mkfs.ext4 -q -F -O metadata_csum "$1" || fail "mkfs.ext4 $1 failed"
  mkdir -p /var/tmp/mnt
  mount "$1" /var/tmp/mnt || fail "cannot mount $1"
  defer "umount /var/tmp/mnt 2>/dev/null || true; rm -f /var/tmp/sums"
  for i in 1 2 3; do head -c 4M /dev/urandom >"/var/tmp/mnt/f$i"; done
  (cd /var/tmp/mnt && sha256sum f1 f2 f3) >/var/tmp/sums
  umount /var/tmp/mnt
}
fs_check() {
  e2fsck -fn "$1" >/dev/null 2>&1 || fail "e2fsck found errors on $1"
  mount "$1" /var/tmp/mnt || fail "cannot mount $1"
  (cd /var/tmp/mnt && sha256sum -c --quiet /var/tmp/sums) || fail "files on $1 changed"
  umount /var/tmp/mnt
}

# create_device NAME SPEC_JSON: a device through ublkctl (so ublkd.service's sandbox applies),
# from a spec file in /var/lib/ublk; sets DEV to its block device. Spec and device go at exit.
create_device() {
  mkdir -p /var/lib/ublk
  echo "$2" >"/var/lib/ublk/$1.json"
  defer rm -f "/var/lib/ublk/$1.json"
  DEV=$(ublkctl create "$1" --spec "/var/lib/ublk/$1.json") ||
    fail "cannot create $1: $(journal -u ublkd | tail -n 5)"
  defer "ublkctl delete $1 --missing-ok"
}

# start_killer NAME: SIGKILLs device NAME's serving queue daemon every 2 s (only while the device
# is live: a kill during recovery is the crash-loop case) until stop_killer, which sets KILLS to
# the number of kills that hit.
start_killer() {
  : >/var/tmp/kills
  touch /var/tmp/keep-killing
  (
    next=$SECONDS
    while [ -e /var/tmp/keep-killing ]; do
      next=$((next + 2))
      [ $((next - SECONDS)) -gt 0 ] && sleep $((next - SECONDS))
      [ -e /var/tmp/keep-killing ] || break
      if state_is "$1" live && kill_queue_daemon "$1"; then echo kill >>/var/tmp/kills; fi
    done
  ) &
  KILLER=$!
  defer "rm -f /var/tmp/keep-killing; kill $KILLER 2>/dev/null || true"
}
stop_killer() {
  rm -f /var/tmp/keep-killing
  wait "$KILLER"
  KILLS=$(wc -l </var/tmp/kills)
}

# ublk_prop NAME KEY: one property of the device (RestartCount, LastExitReason, ...), or nothing.
ublk_prop() {
  ublkctl status "$1" --json 2>/dev/null | jq -r --arg key "$2" '.[$key] // ""' 2>/dev/null
}

# start_verifier DEVICE [SIZE]: fio write-then-verify passes (crc32c, SIZE each, 32M unless
# given) over DEVICE, one after another in
# the background, until stop_verifier; stop_verifier fails the test if any pass saw an error or a
# mismatch, and prints the passes and the longest I/O stall (completion latency) among them.
start_verifier() {
  touch /var/tmp/verifying
  (
    runs=0 stall=0
    while [ -e /var/tmp/verifying ]; do
      ms=$(fio_checked /var/tmp/verifier.json --name=verifier --filename="$1" --ioengine=io_uring --direct=1 \
        --rw=randwrite --bs=4k --iodepth=16 --size="${2:-32M}" --verify=crc32c --verify_fatal=1 --do_verify=1) || exit 1
      runs=$((runs + 1))
      stall=$(awk -v a="$stall" -v b="$ms" 'BEGIN { print (a > b) ? a : b }')
      echo "$runs $stall" >/var/tmp/verifier.result
    done
  ) &
  VERIFIER=$!
  defer "rm -f /var/tmp/verifying; kill $VERIFIER 2>/dev/null || true"
}
stop_verifier() {
  local runs stall
  rm -f /var/tmp/verifying
  wait "$VERIFIER" || fail "fio failed during the test"
  read -r runs stall </var/tmp/verifier.result
  [ "$runs" -ge 1 ] || fail "no fio pass completed"
  echo "  $runs fio passes, all verified; longest I/O stall $stall ms ($(uname -r))"
}

# expect_no_io_errors: the kernel logged no block I/O or filesystem error during the test (the
# harness empties the kernel's log buffer before each case).
expect_no_io_errors() {
  ! dmesg | grep -E 'I/O error|EXT4-fs error|Buffer I/O' || fail "the kernel logged I/O errors"
}

# --- multi-boot tests (a boot of their own: tests/vm/poweroff-cycles, tests/vm/boot-devices) ---

# power_off_after_case: powers the guest off 3 s after the case ends, its system as it is (the
# harness skips its leftover checks; the host judges the shutdown: tests/vm/run, expect-poweroff).
# The manager logs to the console at info level, so the host can read the shutdown's order there.
power_off_after_case() {
  mkdir -p /run/systemd/system/ublkd-vmtest.service.d
  printf '[Unit]\nSuccessAction=none\nFailureAction=none\n' >/run/systemd/system/ublkd-vmtest.service.d/poweroff.conf
  systemctl daemon-reload
  touch "$UBLKD_RESULTS/expect-poweroff"
  systemd-analyze log-target console
  systemd-analyze log-level info
  systemd-run --on-active=3 --timer-property=AccuracySec=100ms --unit=ublkvm-poweroff systemctl poweroff
}
