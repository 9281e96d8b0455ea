#!/usr/bin/env python3
"""Turns the backend benchmark's results.json into a markdown table: median IOPS per device, and
ublkd's median per-repetition ratio against each other client of the same backend."""
import json
import statistics
import sys

data = json.load(open(sys.argv[1]))
rows = {}
for r in data["results"]:
    rows.setdefault((r["backend"], r["rw"], r["bs"], r["qd"]), []).append(r["iops"])

reps = len(next(iter(rows.values())))
print(f"Kernel {data['kernel']}, {data['runtime']} s per run, median of {reps} runs, IOPS\n")
print("| backend, workload | client | IOPS | ublkd's ratio |")
print("|---|---|---|---|")
for (backend, rw, bs, qd), runs in rows.items():
    ours = f"ublkd-{backend}"
    for client in runs[0]:
        iops = statistics.median(run[client] for run in runs)
        if client == ours:
            ratio = ""
        else:
            ratio = f"**{statistics.median(run[ours] / run[client] for run in runs):.2f}x**"
        print(f"| {backend}, {rw} {bs} qd {qd} | {client} | {iops:,.0f} | {ratio} |")
