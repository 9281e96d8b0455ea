# A real single-node Ceph cluster in the guest, for RBD tests (sourced after lib.sh, bash):
#   start_ceph   one ceph-mon and one ceph-osd (memstore) on 127.0.0.1, auth off, a pool `rbd`
#                (size 1) ready for images; exports CEPH_CONF. Stopped and removed at exit.
#   stop_ceph    stops the daemons and removes the cluster's directory (idempotent).
# Everything lives in $CEPH_DIR (/var/tmp/ceph): ceph.conf, the daemons' data and their logs
# (mon.a.log, osd.0.log). No ceph-mgr: the mon creates pools and their PGs by itself, and neither
# the rbd CLI nor librbd needs one (only `ceph -s`-style PG statistics and `rbd perf` would).
# Clients need nothing but the conf (CEPH_CONF, or rados_conf_read_file on it): no keyring.
CEPH_DIR=${CEPH_DIR:-/var/tmp/ceph}
CEPH_PORT=${CEPH_PORT:-6789}
# The OSD's capacity. memstore keeps every byte written in the guest's RAM (3 GiB in all).
CEPH_MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-1G}
CEPH_MON_PID='' CEPH_OSD_PID=''

# _ceph_fail WHAT DAEMON: fails the test with WHAT and the tail of DAEMON's (mon.a, osd.0) log
# and of its stderr (where a crash or a bad option shows).
_ceph_fail() {
  local log=$CEPH_DIR/$2.log err=$CEPH_DIR/$2.stderr
  fail "$1
--- tail of $log:
$(tail -n 25 "$log" 2>&1)
--- $err:
$(tail -n 10 "$err" 2>&1)"
}

# _ceph_alive PID DAEMON: fails the test (with DAEMON's log) when that daemon has exited.
_ceph_alive() {
  kill -0 "$1" 2>/dev/null && return 0
  local rc=0
  wait "$1" || rc=$?
  _ceph_fail "ceph daemon $2 exited ($rc)" "$2"
}

# osd.0 in the CRUSH root (the OSD cannot place itself: update on start is off) and the pool.
_ceph_mon_setup='
import json, os, sys, rados
r = rados.Rados(conffile=os.environ["CEPH_CONF"])
r.connect(timeout=100)
for cmd in ({"prefix": "osd create", "uuid": os.environ["CEPH_OSD_UUID"], "id": 0},
            {"prefix": "osd crush add", "id": 0, "weight": 1.0, "args": ["root=default"]},
            {"prefix": "osd pool create", "pool": "rbd", "pg_num": 8, "pgp_num": 8},
            {"prefix": "osd pool application enable", "pool": "rbd", "app": "rbd"}):
    ret, outbuf, outs = r.mon_command(json.dumps(cmd), b"", timeout=60)
    if ret != 0:
        sys.exit("%s: %s (%d)" % (cmd["prefix"], outs, ret))
r.shutdown()
'

start_ceph() {
  local start=$SECONDS fsid out
  [ ! -e "$CEPH_DIR" ] || fail "$CEPH_DIR exists already: a cluster left behind?"
  mkdir -p "$CEPH_DIR/mon.a" "$CEPH_DIR/osd.0" "$CEPH_DIR/run"
  defer stop_ceph
  # The daemons talk over 127.0.0.1, and a script-mode guest has not brought the loopback up.
  if ((($(</sys/class/net/lo/flags) & 1) == 0)); then # IFF_UP clear
    ip link set lo up || fail "cannot bring up the loopback interface"
    defer ip link set lo down
  fi
  fsid=$(</proc/sys/kernel/random/uuid)
  CEPH_OSD_UUID=$(</proc/sys/kernel/random/uuid)
  export CEPH_OSD_UUID
  cat >"$CEPH_DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$CEPH_PORT
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = /dev/null
run dir = $CEPH_DIR/run
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
[mon]
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/\$name.log
mon data = $CEPH_DIR/mon.\$id
mon cluster log file = $CEPH_DIR/cluster.log
mon data avail crit = 0
mon data avail warn = 0
paxos propose interval = 0.1
mon osd auto mark new in = true
[osd]
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/\$name.log
osd data = $CEPH_DIR/osd.\$id
osd objectstore = memstore
memstore device bytes = $CEPH_MEMSTORE_BYTES
osd crush update on start = false
osd class update on start = false
# A dead client's exclusive lock goes when its watch times out: 5 s here, not Ceph's 30 s, so a
# test that kills a client waits less (the stall itself is measured and reported).
osd client watch timeout = 5
osd op num shards = 1
osd op num threads per shard = 2
osd class load list = *
osd class default list = *
EOF
  export CEPH_CONF=$CEPH_DIR/ceph.conf

  out=$(monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$CEPH_PORT]" "$CEPH_DIR/monmap" 2>&1) ||
    fail "monmaptool failed: $out"
  out=$(ceph-mon --id a --mkfs --monmap "$CEPH_DIR/monmap" --keyring /dev/null 2>&1) ||
    fail "ceph-mon --mkfs failed: $out"
  ceph-mon --id a -f >>"$CEPH_DIR/mon.a.stderr" 2>&1 &
  CEPH_MON_PID=$!
  # The mon commands from one Python process: each `ceph` CLI start costs seconds in the guest.
  # /usr/bin/python3: the python3-rados package is there, not in a pyenv first on the PATH.
  out=$(timeout 120 /usr/bin/python3 -c "$_ceph_mon_setup" 2>&1) || {
    _ceph_alive "$CEPH_MON_PID" mon.a
    _ceph_fail "cannot create osd.0 and the rbd pool: $out" mon.a
  }
  echo "  ceph mon up, osd.0 and pool rbd made after $((SECONDS - start)) s"

  out=$(ceph-osd --id 0 --mkfs --osd-uuid "$CEPH_OSD_UUID" 2>&1) || _ceph_fail "ceph-osd --mkfs failed: $out" osd.0
  ceph-osd --id 0 -f >>"$CEPH_DIR/osd.0.stderr" 2>&1 &
  CEPH_OSD_PID=$!
  wait_until 240 _ceph_rbd_works || {
    _ceph_alive "$CEPH_OSD_PID" osd.0
    _ceph_alive "$CEPH_MON_PID" mon.a
    _ceph_fail "the rbd pool did not take an image within 240 s: $(timeout 30 ceph osd stat 2>&1)" osd.0
  }
  echo "  ceph cluster ready in $((SECONDS - start)) s"
}

_ceph_rbd_works() {
  _ceph_alive "$CEPH_OSD_PID" osd.0
  timeout 30 rbd --rados-osd-op-timeout 10 create --size 1M rbd/ceph-ready >/dev/null 2>&1 &&
    rbd rm --no-progress rbd/ceph-ready >/dev/null 2>&1
}

stop_ceph() {
  local pid
  for pid in $CEPH_OSD_PID $CEPH_MON_PID; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CEPH_OSD_PID='' CEPH_MON_PID=''
  rm -rf "$CEPH_DIR"
}
