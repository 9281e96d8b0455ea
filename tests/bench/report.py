#!/usr/bin/env python3
"""Turns a benchmark results.json into a markdown table of medians and ratios."""
import json
import statistics
import sys

data = json.load(open(sys.argv[1]))
rows = {}
for r in data["results"]:
    key = (r["target"], r["rw"], r["qd"])
    rows.setdefault(key, []).append(r)

names = {"null": ("null_blk", "ublkd-null"), "loop": ("loop", "ublkd-loop")}
print(f"Kernel {data['kernel']}, fio 4k, {data['runtime']} s per run, median of {len(next(iter(rows.values())))} runs\n")
print("| workload | kernel driver | ublkd | ratio |")
print("|---|---|---|---|")
for (target, rw, qd), runs in sorted(rows.items(), key=lambda kv: (kv[0][0] != "null", kv[0][1], -kv[0][2])):
    kname, uname = names[target]
    if qd > 1:
        k = statistics.median(x["kernel"][0] for x in runs)
        u = statistics.median(x["ublkd"][0] for x in runs)
        ratio = statistics.median(x["ublkd"][0] / x["kernel"][0] for x in runs)
        print(f"| {uname} vs {kname}, {rw}, qd {qd}, IOPS | {k:,.0f} | {u:,.0f} | **{ratio:.2f}x** |")
    else:
        k = statistics.median(x["kernel"][1] for x in runs)
        u = statistics.median(x["ublkd"][1] for x in runs)
        ratio = statistics.median(x["ublkd"][1] / x["kernel"][1] for x in runs)
        print(f"| {uname} vs {kname}, {rw}, qd 1, mean latency us | {k:.1f} | {u:.1f} | {ratio:.2f}x |")
