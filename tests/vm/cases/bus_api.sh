#!/bin/bash
# Description: the bus API as its XML documents it. Every member of org.ublk.Manager and
# org.ublk.Device in the installed introspection XML (with its @since) is what `busctl introspect`
# shows on the live objects, with the same signatures, and the live objects have nothing
# undocumented. A device's object path is its escaped name, and the object exists from
# CreateDevice on: DeviceAdded and InterfacesAdded (state starting) come before the reply.
source "$(dirname "$0")/../lib.sh"

xml_dir=/usr/share/dbus-1/interfaces
[ -f $xml_dir/org.ublk.Manager.xml ] || fail "the interface XML is not installed in $xml_dir"

step "a device's path is its name, escaped; its object appears (starting) before CreateDevice returns"
stdbuf -oL dbus-monitor --system "type='signal',sender='org.ublk.Manager'" "type='method_return'" >/var/tmp/monitor.log 2>&1 &
monitor=$!
defer "kill $monitor 2>/dev/null; rm -f /var/tmp/monitor.log"
# The monitor is ready once it shows a call of ours.
monitor_sees_a_call() {
  busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager ListDevices >/dev/null
  grep -q "^method return" /var/tmp/monitor.log
}
wait_until 10 monitor_sees_a_call || fail "dbus-monitor shows nothing: $(head -c 300 /var/tmp/monitor.log)"
reply=$(busctl call org.ublk.Manager /org/ublk/Manager org.ublk.Manager CreateDevice ss db-1 '{"target":"null","size":"64M"}')
defer "ublkctl delete db-1 --missing-ok 2>/dev/null"
[[ $reply =~ ^uo\ [0-9]+\ \"/org/ublk/Device/db_2d1\"$ ]] || fail "CreateDevice replied: $reply"
[ "$(busctl get-property org.ublk.Manager /org/ublk/Device/db_2d1 org.ublk.Device Name)" = 's "db-1"' ] ||
  fail "the object's Name"
wait_until 10 grep -q 'string "live"' /var/tmp/monitor.log || fail "no state change to live on the bus"
kill $monitor
python3 - /var/tmp/monitor.log <<'EOT' || fail "the order on the bus: $(grep -E '^(signal|method return)' /var/tmp/monitor.log)"
import re, sys
# dbus-monitor prints a message as a header line and its arguments indented below it.
first = {}
for i, block in enumerate(re.split(r"\n(?=\S)", open(sys.argv[1]).read())):
    ours = 'object path "/org/ublk/Device/db_2d1"' in block
    if block.startswith("signal") and "member=DeviceAdded" in block and ours:
        first.setdefault("DeviceAdded", i)
    elif block.startswith("signal") and "member=InterfacesAdded" in block and 'string "starting"' in block:
        first.setdefault("InterfacesAdded(starting)", i)
    elif block.startswith("method return") and ours:
        first.setdefault("CreateDevice reply", i)
    elif block.startswith("signal") and "member=DeviceStateChanged" in block and 'string "live"' in block:
        first.setdefault("DeviceStateChanged(live)", i)
print("  on the bus, in order:", ", ".join(sorted(first, key=first.get)))
reply = first["CreateDevice reply"]
assert first["DeviceAdded"] < reply and first["InterfacesAdded(starting)"] < reply, first
assert "DeviceStateChanged(live)" in first, first
EOT
objects=$(busctl call org.ublk.Manager /org/ublk org.freedesktop.DBus.ObjectManager GetManagedObjects)
expect_contains "$objects" /org/ublk/Device/db_2d1

step "every documented member is on the live objects, with its signature, and nothing else is"
busctl --xml-interface introspect org.ublk.Manager /org/ublk/Manager >/var/tmp/manager.live.xml
busctl --xml-interface introspect org.ublk.Manager /org/ublk/Device/db_2d1 >/var/tmp/device.live.xml
defer rm -f /var/tmp/manager.live.xml /var/tmp/device.live.xml
python3 - $xml_dir/org.ublk.Manager.xml /var/tmp/manager.live.xml $xml_dir/org.ublk.Device.xml /var/tmp/device.live.xml <<'EOT' ||
import sys
import xml.etree.ElementTree as ET

def members(path, with_comments):
    """{(interface, kind, name): signature} of the org.ublk.* interfaces in an introspection XML,
    and for the documented XML the members without an @since comment right before them."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=with_comments))
    root = ET.parse(path, parser).getroot()
    found, undated = {}, []
    for iface in root.iter("interface"):
        name = iface.get("name")
        if not name.startswith("org.ublk."):
            continue
        previous = None
        for node in iface:
            if node.tag is ET.Comment:
                previous = node
                continue
            kind = node.tag
            if kind == "method":
                sig = ("in", "".join(a.get("type") for a in node.iter("arg") if a.get("direction", "in") == "in"),
                       "out", "".join(a.get("type") for a in node.iter("arg") if a.get("direction") == "out"))
            elif kind == "signal":
                sig = "".join(a.get("type") for a in node.iter("arg"))
            elif kind == "property":
                sig = (node.get("type"), node.get("access"))
            else:
                continue
            found[(name, kind, node.get("name"))] = sig
            if with_comments and (previous is None or "@since:" not in previous.text):
                undated.append(f"{name}.{node.get('name')}")
            previous = None
    return found, undated

problems = []
args = sys.argv[1:]
for documented_path, live_path in zip(args[::2], args[1::2]):
    documented, undated = members(documented_path, True)
    live, _ = members(live_path, False)
    problems += [f"no @since: {m}" for m in undated]
    for key, sig in documented.items():
        if key not in live:
            problems.append(f"documented, not live: {key}")
        elif live[key] != sig:
            problems.append(f"{key}: documented {sig}, live {live[key]}")
    problems += [f"live, not documented: {key}" for key in live if key not in documented]
    print(f"  {documented_path}: {len(documented)} members checked")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
EOT
  fail "the live API differs from its XML"

ublkctl delete db-1
! busctl get-property org.ublk.Manager /org/ublk/Device/db_2d1 org.ublk.Device Name 2>/dev/null ||
  fail "the object outlived DeleteDevice"
pass
