#!/bin/bash
# Description: online resize. Where the kernel has UPDATE_SIZE (6.16+), a loop device carrying a
# mounted ext4 grows with its backing file and resize2fs grows the filesystem online, its data
# verified before and after and in the new space; a shrink needs --force; a null device grows and,
# forced, shrinks; sizes and targets that cannot be are refused with a named error and change
# nothing. Before 6.16 a resize is KernelUnsupported and changes nothing.
source "$(dirname "$0")/../lib.sh"

# The backing file on ext4 on the scratch disk, as an operator's would be.
mkfs.ext4 -q -F "$(scratch_disk)"
mkdir -p /mnt/backing
mount "$(scratch_disk)" /mnt/backing
defer "umount /mnt/backing"
img=/mnt/backing/resize.img
truncate -s 64M "$img"
defer rm -f "$img"
create_device resize "{\"target\":\"loop\",\"path\":\"$img\"}"
echo "  data path: $(ublk_prop resize DataPath)"
size_is() { [ "$(blockdev --getsize64 "$1")" = "$2" ]; }
file_is() { [ "$(stat -c %s "$img")" = "$1" ]; }

if ! ublkctl features | grep -qw UPDATE_SIZE; then
  step "$(uname -r) has no UPDATE_SIZE: a resize is refused as unsupported, and nothing changes"
  expect_exit 7 "UBLK_F_UPDATE_SIZE" ublkctl resize resize 128M
  size_is "$DEV" $((64 << 20)) || fail "$DEV changed size: $(blockdev --getsize64 "$DEV")"
  file_is $((64 << 20)) || fail "the backing file changed size"
  pass
fi

step "ext4 on the loop device, mounted, with 32M of data"
mkfs.ext4 -q "$DEV"
mkdir -p /mnt/resize
mount "$DEV" /mnt/resize
defer "umount /mnt/resize 2>/dev/null || true"
head -c 32M /dev/urandom >/var/tmp/before
defer rm -f /var/tmp/before /var/tmp/after
cp /var/tmp/before /mnt/resize/before
sync

step "grown to 256M while mounted: the file grows, the kernel and ublkd see it, resize2fs grows ext4 online"
ublkctl resize resize 256M
size_is "$DEV" $((256 << 20)) || fail "$DEV is $(blockdev --getsize64 "$DEV") bytes after the resize"
file_is $((256 << 20)) || fail "the backing file is $(stat -c %s "$img") bytes"
[ "$(ublk_prop resize Size)" = $((256 << 20)) ] || fail "ublkd says Size $(ublk_prop resize Size)"
resize2fs "$DEV" 2>&1 | grep -q 'is now' || fail "resize2fs did not grow the mounted ext4"
blocks=$(df -k --output=size /mnt/resize | tail -n 1)
[ "$blocks" -gt $((200 << 10)) ] || fail "ext4 is $blocks KiB after resize2fs"
echo "  ext4: $blocks KiB"
# More data than the old device could hold, then everything read back from the device itself.
head -c 160M /dev/urandom >/var/tmp/after
cp /var/tmp/after /mnt/resize/after
umount /mnt/resize
echo 3 >/proc/sys/vm/drop_caches
e2fsck -fn "$DEV" >/dev/null || fail "e2fsck found errors after the online resize"
mount "$DEV" /mnt/resize
cmp /mnt/resize/before /var/tmp/before || fail "the data written before the resize changed"
cmp /mnt/resize/after /var/tmp/after || fail "the data written into the grown space is not what was written"
umount /mnt/resize

step "a shrink needs --force; without it, and for bad sizes, nothing changes"
expect_exit 3 "ask with force" ublkctl resize resize 128M
expect_exit 3 "not a positive multiple of the logical block size" ublkctl resize resize 1000001
expect_exit 2 "SIZE: 'lots'" ublkctl resize resize lots
expect_exit 4 "no device named 'nosuch'" ublkctl resize nosuch 1G
expect_exit 1 "unknown option 'speed'" busctl --system call org.ublk.Manager /org/ublk/Manager org.ublk.Manager \
  ResizeDevice 'sta{sv}' resize $((512 << 20)) 1 speed s fast
size_is "$DEV" $((256 << 20)) || fail "$DEV changed size on a refused resize"
file_is $((256 << 20)) || fail "the backing file changed size on a refused resize"

step "a null device grows, and forced, shrinks"
create_device resize-null '{"target":"null","size":"1G"}'
null=$DEV
ublkctl resize resize-null 8G
size_is "$null" $((8 << 30)) || fail "$null is $(blockdev --getsize64 "$null") bytes, not 8G"
ublkctl resize resize-null 512M --force
size_is "$null" $((512 << 20)) || fail "$null is $(blockdev --getsize64 "$null") bytes, not 512M"
pass
