#!/bin/bash
# Description: ext4 on a ublkd loop device keeps files across unmount, remount and a restart of
# the device: sha256 sums match after each.
source "$(dirname "$0")/../lib.sh"

backing=$(scratch_file 256M)
mnt=$(mktemp -d /var/tmp/ublkvm-mnt.XXXXXX)
serve_device "{\"target\":\"loop\",\"path\":\"$backing\",\"queues\":2}"

step "mkfs.ext4 and write files"
mkfs.ext4 -q -F "$UBLK_DEV"
mount "$UBLK_DEV" "$mnt"
defer "umount $mnt 2>/dev/null"
for i in 1 2 3 4; do head -c $((i * 3))M /dev/urandom >"$mnt/file$i"; done
(cd "$mnt" && sha256sum file*) >/var/tmp/sums
sync
umount "$mnt"

step "remount: the sums match"
mount "$UBLK_DEV" "$mnt"
(cd "$mnt" && sha256sum -c --quiet /var/tmp/sums) || fail "checksums differ after remount"
umount "$mnt"

step "restart the device: the sums still match"
stop_device
serve_device "{\"target\":\"loop\",\"path\":\"$backing\"}"
mount "$UBLK_DEV" "$mnt"
(cd "$mnt" && sha256sum -c --quiet /var/tmp/sums) || fail "checksums differ after device restart"
umount "$mnt"
pass
