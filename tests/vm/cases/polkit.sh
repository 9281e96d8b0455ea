#!/bin/bash
# Description: polkit decides for callers who are not root. A rule grants one test user
# org.ublk.manage-devices: that user creates, resizes and deletes a device through ublkctl and
# reads its own device's spec. Another user is refused, with PermissionDenied naming the action
# (ublkctl exit code 8), changes nothing, and does not read the spec or the backing path of
# devices it did not create. Root needs no rule.
source "$(dirname "$0")/../lib.sh"

[ -f /usr/share/polkit-1/actions/org.ublk.policy ] || fail "the polkit action is not installed"
command -v /usr/lib/polkit-1/polkitd >/dev/null || skip "polkitd is not installed"

step "two test users; a polkit rule grants one of them"
useradd --system --no-create-home ublkvm-admin
useradd --system --no-create-home ublkvm-other
defer userdel ublkvm-admin
defer userdel ublkvm-other
cat >/etc/polkit-1/rules.d/50-ublkvm.rules <<'EOT'
polkit.addRule(function(action, subject) {
  if (action.id == "org.ublk.manage-devices" && subject.user == "ublkvm-admin") return polkit.Result.YES;
});
EOT
defer rm -f /etc/polkit-1/rules.d/50-ublkvm.rules
systemctl restart polkit # reads the rule now, whether it ran already or not
mkdir -p /var/lib/ublk
echo '{"target":"null","size":"64M"}' >/var/lib/ublk/pk.json
chmod 644 /var/lib/ublk/pk.json
defer rm -f /var/lib/ublk/pk.json
admin() { setpriv --reuid=ublkvm-admin --regid=ublkvm-admin --clear-groups -- "$@"; }
other() { setpriv --reuid=ublkvm-other --regid=ublkvm-other --clear-groups -- "$@"; }

step "the granted user creates a device, reads its spec, and resizes it where the kernel can"
dev=$(admin ublkctl create pk --spec /var/lib/ublk/pk.json) || fail "ublkvm-admin cannot create"
defer "ublkctl delete pk --missing-ok 2>/dev/null"
[ -b "$dev" ] || fail "$dev is not a block device"
admin ublkctl status pk --json | jq -e '.Spec | fromjson | .target == "null"' >/dev/null ||
  fail "ublkvm-admin cannot read its own device's spec: $(admin ublkctl status pk --json)"
if ublkctl features | grep -qw UPDATE_SIZE; then
  admin ublkctl resize pk 128M || fail "ublkvm-admin cannot resize"
  [ "$(blockdev --getsize64 "$dev")" = $((128 << 20)) ] || fail "$dev is $(blockdev --getsize64 "$dev") bytes"
fi

step "another user is refused everything that changes devices, naming the action; nothing changes"
expect_exit 8 org.ublk.manage-devices other ublkctl delete pk
expect_exit 8 org.ublk.manage-devices other ublkctl create pk2 --spec /var/lib/ublk/pk.json
out=$(other dbus-send --system --print-reply --dest=org.ublk.Manager /org/ublk/Manager \
  org.ublk.Manager.RestartDevice string:pk 2>&1) && fail "ublkvm-other restarted pk"
grep -q "^Error org.ublk.Error.PermissionDenied: uid [0-9]* may not restart devices: polkit action org.ublk.manage-devices" <<<"$out" ||
  fail "RestartDevice by ublkvm-other: $out"
state_is pk live || fail "pk is '$(ublk_state pk)' after the refusals"
ublkctl status pk2 >/dev/null 2>&1 && fail "the refused create left pk2"

step "another user reads the device's state, not its spec or backing path"
out=$(other ublkctl status pk --json) || fail "ublkvm-other cannot read the status: $out"
jq -e '.State == "live" and (has("Spec") | not) and (has("Backing") | not)' <<<"$out" >/dev/null ||
  fail "ublkvm-other's status of pk: $out"
out=$(other busctl --system call org.ublk.Manager /org/ublk/Device/pk org.ublk.Device GetDetails 2>&1) &&
  fail "ublkvm-other read GetDetails: $out"
expect_contains "$out" "only root and its creator"

step "a root-made loop device: its backing path is root's to read, not another user's"
truncate -s 64M /var/lib/ublk/pk-root.img
defer rm -f /var/lib/ublk/pk-root.img
echo '{"target":"loop","path":"/var/lib/ublk/pk-root.img"}' | ublkctl create pkroot --spec - >/dev/null
defer "ublkctl delete pkroot --missing-ok 2>/dev/null"
[ "$(ublk_prop pkroot Backing)" = /var/lib/ublk/pk-root.img ] || fail "root does not see the backing path"
other ublkctl status pkroot --json | jq -e 'has("Backing") | not' >/dev/null || fail "ublkvm-other sees the backing path"
admin ublkctl status pkroot --json | jq -e 'has("Backing") | not' >/dev/null || fail "ublkvm-admin sees root's backing path"
ublkctl delete pkroot

step "the granted user deletes the device"
admin ublkctl delete pk || fail "ublkvm-admin cannot delete"
expect_no_devices
pass
