#!/bin/bash
# Description: one boot of tests/vm/poweroff-cycles: ext4 on a ublk@ loop device over the
# persistent disk. The filesystem the boot before left is clean (e2fsck) and holds every file it
# had synced. Then this boot syncs one file more, leaves writes in flight and a process that keeps
# the mount busy past the units' stop, and powers off: systemd-shutdown's final kill spares the
# queue daemon ('@' argv[0]), so the filesystem is unmounted while it still serves. The host
# checks the console once the guest is off (tests/vm/run, expect-poweroff; poweroff-cycles).
source "$(dirname "$0")/../lib.sh"

disk=$(persist_disk)
mkdir -p /etc/ublk.d /mnt/pdisk
echo "{\"target\":\"loop\",\"path\":\"$disk\"}" >/etc/ublk.d/pdisk.json
systemctl start ublk@pdisk
wait_for_link pdisk
dev=/dev/ublk/by-name/pdisk
if ! blkid -p "$dev" >/dev/null 2>&1; then
  step "first boot: a new ext4 on $dev"
  mkfs.ext4 -q "$dev"
else
  step "the filesystem the boot before left is clean"
  e2fsck -fn "$dev" >/var/tmp/fsck.log 2>&1 || fail "e2fsck -fn exited $?: $(cat /var/tmp/fsck.log)"
fi
mount "$dev" /mnt/pdisk
cycle=$(($(find /mnt/pdisk -maxdepth 1 -name 'data-*' | wc -l) + 1))
if [ -e /mnt/pdisk/expected ]; then
  step "every file the earlier boots synced is intact ($((cycle - 1)))"
  (cd /mnt/pdisk && sha256sum --quiet -c expected) || fail "synced data was lost or changed"
fi

step "boot $cycle: 8 MiB more, synced; writes in flight; the mount held busy past the units' stop"
head -c 8M /dev/urandom >"/mnt/pdisk/data-$cycle"
(cd /mnt/pdisk && sha256sum data-* >expected.new && mv expected.new expected)
sync
systemd-run --unit=ublkvm-writer --property=Restart=no \
  sh -c 'while :; do head -c 1M /dev/urandom >/mnt/pdisk/unsynced; done'
# KillMode=none: stopping this unit leaves its process, so the mount is still busy when the mount
# unit stops, and only systemd-shutdown's final kill (which must spare the queue daemon) frees it.
systemd-run --unit=ublkvm-holder --property=KillMode=none --property=WorkingDirectory=/mnt/pdisk sleep infinity

step "poweroff"
power_off_after_case
pass
