# The host side of a guest boot (sourced by tests/vm/run). A session is one QEMU guest that runs
# cases one after another (guest/runner); it lives in $results_root/_sessions/<session>/:
#   console.log qemu.log pid   the guest's serial console, QEMU's own output, the QEMU wrapper's pid
#   ready request done-ID      the control files (guest/runner says what each holds)
#   init-error                 why the initramfs gave up, if it did
# Needs: kdir kver initramfs mode smp build here source_dir results_root (set by run).

# Kernel lines only (a printk timestamp, and not a userspace "ident[pid]: " line forwarded to the
# kernel log by systemd), so a test's own output cannot trip this.
splat='Oops|BUG:|WARNING:|INFO: task .* blocked for more than|possible circular locking|possible recursive locking|inconsistent lock state|Kernel panic|general protection fault|soft lockup|rcu: .*stall'
splats_in() {
  grep -aE '^\[ *[0-9]+\.[0-9]+\] ' "$1" | grep -avE '^\[ *[0-9]+\.[0-9]+\] [A-Za-z0-9_.@-]+\[[0-9]+\]: ' |
    grep -aE "$splat" || true
}
# splat_report FILE: the kernel's lines from the first splat on (its registers and call trace),
# at most 60, so a failure printed by CI carries what is needed to tell whose bug it is.
splat_report() {
  grep -aE '^\[ *[0-9]+\.[0-9]+\] ' "$1" | grep -avE '^\[ *[0-9]+\.[0-9]+\] [A-Za-z0-9_.@-]+\[[0-9]+\]: ' |
    awk -v re="$splat" 'found || $0 ~ re { found = 1; print; if (++n == 60) exit }'
}

# poll SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds; non-zero if it never did.
poll() {
  local tries=$(($1 * 10)) i
  shift
  for ((i = 0; i < tries; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}
session_gone() { ! session_alive; }

# seconds_since NS: the time since NS (date +%s%N) in seconds, to a tenth.
seconds_since() {
  local tenths=$((($(date +%s%N) - $1) / 100000000))
  echo "$((tenths / 10)).$((tenths % 10))"
}

# session_use NAME: selects the session the other functions act on.
session_use() {
  session=$1
  sdir=$results_root/_sessions/$session
  console=$sdir/console.log
}

session_alive() {
  local pid
  pid=$(cat "$sdir/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qaF -- "$sdir" "/proc/$pid/cmdline" 2>/dev/null
}

# session_kill: ends the session's QEMU (TERM, then KILL after 5 s) and waits for it to go.
session_kill() {
  local pid
  pid=$(cat "$sdir/pid" 2>/dev/null) || return 0
  session_alive || return 0
  kill -TERM "$pid" 2>/dev/null || true
  poll 5 session_gone && return 0
  pkill -KILL -f -- "$sdir/console.log" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  poll 5 session_gone || true
}

# session_wait_exit SECONDS: waits for the guest to leave by itself; kills it after SECONDS.
session_wait_exit() {
  poll "$1" session_gone && return 0
  echo "vm: the guest did not power off within $1 s; killed" >&2
  session_kill
  return 1
}

_qemu_start() {
  local cmdline=(
    console=ttyS0 panic=-1 printk.time=1 sysctl.kernel.hung_task_timeout_secs=60
    # No speculation mitigations (retpolines, RSB fills): a few per cent of the emulator's time,
    # and nothing ublk does depends on them.
    mitigations=off
    # The emulated TSC fails the clocksource watchdog now and then; the switch to the HPET it
    # makes then patches kernel text (static keys) under the running vCPUs, which the emulator
    # has crashed on (int3 in sched_clock_cpu, from clocksource_watchdog_work). Keep the TSC.
    tsc=reliable
    ublkvm.mode=$mode ublkvm.guest=$here/guest ublkvm.moddir=$kdir/root/lib/modules/$kver
    ublkvm.session=$session ublkvm.build=$build ublkvm.source=$source_dir
  )
  local stage_share=()
  if [ "$mode" = systemd ]; then
    cmdline+=(systemd.unit=ublkd-vmtest.target systemd.show_status=error ublkvm.stage=1)
    stage_share=(-virtfs "local,path=$(realpath "$build/vm/stage"),mount_tag=stage,security_model=none,readonly=on,multidevs=remap")
  fi
  # What a multi-boot test carries into the next boot's root (run --carry; initramfs-init).
  if [ -n "${carry_dir:-}" ]; then
    cmdline+=(ublkvm.carry=1)
    stage_share+=(-virtfs "local,path=$carry_dir,mount_tag=carry,security_model=none,multidevs=remap")
  fi
  # A scratch disk with 4 KiB logical sectors (lib.sh: scratch_disk), fresh and sparse each boot.
  # UBLKD_VM_SCRATCH_CACHE=none (the disk benchmark) keeps the host's page cache out of its I/O,
  # as on a real disk.
  truncate -s 1G "$sdir/scratch4k.img"
  local disks=(
    -drive "if=none,id=scratch4k,format=raw,file=$sdir/scratch4k.img,cache=${UBLKD_VM_SCRATCH_CACHE:-writeback}"
    -device virtio-blk-pci,drive=scratch4k,serial=ublkvm-4k,logical_block_size=4096,physical_block_size=4096
  )
  if [ -n "${persist_disk:-}" ]; then
    # QEMU writes what the guest writes to the file as it goes (no cache of its own): what the
    # guest had written before power-off is in the file at the next boot, and no more.
    disks+=(-drive "if=none,id=persist,format=raw,file=$persist_disk"
      -device virtio-blk-pci,drive=persist,serial=ublkvm-persist)
  fi
  # Extra kernel arguments, for experiments (for example the benchmark's clocksource choice).
  cmdline+=(${UBLKD_VM_APPEND:-})
  # Its own session, output to files only, without the session lock (fd 9, tests/vm/run): it
  # outlives the command that started it (a ctest entry).
  setsid timeout --kill-after=5 "${UBLKD_VM_SESSION_LIFE:-10800}" qemu-system-x86_64 \
    -nodefaults -no-user-config -no-reboot -display none -monitor none \
    -accel tcg,thread=multi -cpu max -smp "$smp" -m "${UBLKD_VM_MEMORY:-3G}" \
    -kernel "$kdir/vmlinuz" -initrd "$initramfs" -append "${cmdline[*]}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$results_root,mount_tag=results,security_model=none,multidevs=remap" \
    "${stage_share[@]}" "${disks[@]}" -serial "file:$console" </dev/null >"$sdir/qemu.log" 2>&1 9>&- &
  echo $! >"$sdir/pid"
  # Until the child has exec'd, its command line is bash's, and session_alive would call a booting
  # guest gone.
  poll 10 session_alive || true
}

ready_or_gone() { [ -e "$sdir/ready" ] || ! session_alive; }

# session_boot REASON: a fresh guest for this session (any old one is killed first), up to the
# runner's "ready". Records the boot in $results_root/_sessions/boots.tsv. On failure prints why
# (boot_error) and returns non-zero; the console log stays for a look.
session_boot() {
  local reason=$1 try start_ns ready limit=${UBLKD_VM_BOOT_TIMEOUT:-300}
  session_kill
  for try in 1 2; do
    rm -rf "$sdir"
    mkdir -p "$sdir"
    start_ns=$(date +%s%N)
    _qemu_start
    boot_error=
    poll "$limit" ready_or_gone || true
    ready=$(seconds_since "$start_ns")
    if [ -e "$sdir/ready" ]; then
      printf '%s\t%s\t%s\n' "$session" "$reason" "$ready" >>"$results_root/_sessions/boots.tsv"
      echo "vm: booted $session ($kver) in ${ready}s: $reason"
      if [ -n "$(splats_in "$console")" ]; then
        boot_error="kernel splat during boot: $(splats_in "$console" | head -n 3)"
        session_kill
        return 1
      fi
      return 0
    fi
    if session_alive; then
      boot_error="the guest was not ready after ${limit}s"
      session_kill
      return 1
    fi
    # A crash before /init ran is the emulator's, not the test's: TCG occasionally trips over the
    # kernel patching its own text at boot. Such a boot is retried once, and says so.
    if [ "$try" = 1 ] && [ -n "$(splats_in "$console")" ] && ! grep -aq 'Run /init as init process' "$console"; then
      echo "vm: guest kernel crashed during early boot, before /init (emulator flake); retrying once:"
      splats_in "$console" | head -n 3
      cp "$console" "$results_root/_sessions/$session.early-crash.log"
      continue
    fi
    boot_error="the guest stopped before it was ready"
    [ -s "$sdir/init-error" ] && boot_error=$(cat "$sdir/init-error")
    [ -n "$(splats_in "$console")" ] && boot_error="$boot_error; kernel: $(splats_in "$console" | head -n 3)"
    return 1
  done
}

# session_run ID TEST TIMEOUT SUBDIR: runs TEST in the guest with its results in
# $results_root/SUBDIR. Sets run_status (the case's exit code, after the harness's leftover
# check), run_reboot (1: the guest is leaving after it), run_left (1: it left something behind)
# and run_error (non-empty when the guest did not report: it died or hung; it is then gone).
session_run() {
  local id=$1 test=$2 timeout=$3 subdir=$4 deadline
  run_status= run_reboot=0 run_left=0 run_error=
  echo "run $id $timeout $subdir $test" >"$sdir/request.tmp"
  mv "$sdir/request.tmp" "$sdir/request"
  # The guest's own deadline is TIMEOUT plus 10 s to kill; the leftover check and reset follow.
  deadline=$((SECONDS + timeout + 90))
  while [ ! -e "$sdir/done-$id" ]; do
    if ! session_alive; then
      run_error="the guest stopped without reporting (crash or panic)"
      return
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      run_error="the guest hung: no result ${timeout}s + 90s after the case began"
      session_kill
      return
    fi
    sleep 0.2
  done
  read -r run_status run_reboot run_left <"$sdir/done-$id"
  # The end marker reaches the console a little after the result file (the kernel prints it).
  poll 10 ended_or_gone "$id" || true
}

ended_or_gone() { grep -aq "ublkvm-case-end $1" "$console" || ! session_alive; }

# console_slice ID: the console lines of case ID, from its begin marker to its end marker (or to
# the end of the log when the guest died during the case).
console_slice() {
  awk -v b="ublkvm-case-begin $1 " -v e="ublkvm-case-end $1" \
    'index($0, b) { on = 1 } on { print } on && index($0, e) { exit }' "$console"
}

# session_poweroff: asks the runner to power the guest off; kills it after 120 s.
session_poweroff() {
  session_alive || return 0
  echo poweroff >"$sdir/request.tmp"
  mv "$sdir/request.tmp" "$sdir/request"
  session_wait_exit 120
}
