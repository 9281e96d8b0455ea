#!/bin/bash
# Description: memory pressure does not hang the data path. A queue daemon is an I/O flusher
# (PR_SET_IO_FLUSHER: reclaim inside it starts no I/O) that the OOM killer passes over; a buffered
# device's daemon stays small while 512 MiB moves through it; and fio buffered writes with verify
# through ext4 on a device, in a 256 MiB memory cgroup with a memory hog, finish with the data
# verified, no hung task and the same queue daemon.
source "$(dirname "$0")/../lib.sh"

daemon_of() { pgrep -f "ublkd serve --spec /run/ublkd/devices/$1.spec.json"; }

step "a buffered device: 512 MiB through it, and the daemon's resident size stays bounded"
truncate -s 600M /var/tmp/flat.img
defer rm -f /var/tmp/flat.img
ublk_call CreateDevice string:flat 'string:{"target":"loop","path":"/var/tmp/flat.img","direct_io":false}' \
  >/dev/null || fail "cannot create the buffered device"
defer "ublkctl delete flat --missing-ok"
dd if=/dev/zero of="$(ublk_prop flat BlockDevice)" bs=1M count=512 oflag=direct status=none
rss_kib=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$(daemon_of flat)/status")
echo "  VmRSS after 512 MiB: $((rss_kib / 1024)) MiB"
[ "$rss_kib" -lt $((256 << 10)) ] || fail "the queue daemon holds $((rss_kib / 1024)) MiB after 512 MiB of I/O"
ublkctl delete flat
rm -f /var/tmp/flat.img

step "a device on ext4 on the scratch disk: its daemon and threads have oom_score_adj -1000, PF_MEMALLOC_NOIO"
disk=$(scratch_disk)
mkfs.ext4 -q -F "$disk"
mkdir -p /mnt/scratch /mnt/reclaim
mount "$disk" /mnt/scratch
defer "umount /mnt/scratch"
truncate -s 600M /mnt/scratch/reclaim.img
ublk_call CreateDevice string:reclaim 'string:{"target":"loop","path":"/mnt/scratch/reclaim.img"}' >/dev/null ||
  fail "cannot create the device"
defer "ublkctl delete reclaim --missing-ok"
pid=$(daemon_of reclaim)
[ "$(<"/proc/$pid/oom_score_adj")" = -1000 ] || fail "oom_score_adj is $(<"/proc/$pid/oom_score_adj")"
for task in /proc/"$pid"/task/*; do
  read -r stat <"$task/stat"
  read -ra fields <<<"${stat##*) }"  # after "(comm) ": fields[0] is the state (field 3), flags field 9
  (((fields[6] & 0x80000) != 0)) || fail "thread $(<"$task/comm") is not an I/O flusher (flags ${fields[6]})"
done
echo "  $(ls "/proc/$pid/task" | wc -l) threads, all PF_MEMALLOC_NOIO"

step "fio buffered writes and a memory hog, both in a 256 MiB cgroup"
mkfs.ext4 -q "$(ublk_prop reclaim BlockDevice)"
mount "$(ublk_prop reclaim BlockDevice)" /mnt/reclaim
defer "umount /mnt/reclaim"
systemctl set-property --runtime ublkvm-small.slice MemoryMax=256M MemorySwapMax=0
# The hog grows until the cgroup's OOM killer takes it, and starts again, until the test ends.
# The writer is never the OOM killer's choice, and neither unit is stopped when a process of it is killed.
systemd-run --quiet --slice=ublkvm-small.slice --unit=ublkvm-hog -p OOMPolicy=continue \
  bash -c 'while :; do tail /dev/zero; done'
defer "systemctl stop ublkvm-hog ublkvm-small.slice; systemctl reset-failed ublkvm-hog ublkvm-writer 2>/dev/null"
defer rm -f /var/tmp/pressure.json
SECONDS=0
systemd-run --quiet --wait --pipe --slice=ublkvm-small.slice --unit=ublkvm-writer -p OOMPolicy=continue \
  -p OOMScoreAdjust=-900 \
  fio --name=pressure --directory=/mnt/reclaim --rw=write --bs=64k --size=192M --ioengine=psync \
  --end_fsync=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=json >/var/tmp/pressure.json ||
  fail "fio under memory pressure failed: $(tail -n 20 /var/tmp/pressure.json)"
jq -e 'all(.jobs[]; .error == 0)' /var/tmp/pressure.json >/dev/null || fail "fio reported errors"
echo "  192 MiB written and verified under pressure in ${SECONDS} s;" \
  "OOM kills of the hog: $(journalctl -k --no-pager -o cat | grep -c 'Memory cgroup out of memory' || true)"
[ "$(daemon_of reclaim)" = "$pid" ] || fail "the queue daemon changed under memory pressure"
state_is reclaim live || fail "the device is $(ublk_state reclaim)"
pass
