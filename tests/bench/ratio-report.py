#!/usr/bin/env python3
"""The report of the disk and scaling benchmarks (tests/bench/disk.sh, scaling.sh): per workload,
the median over repetitions of the per-repetition IOPS ratio of each ublkd device to the kernel's
own driver (device "kernel"; above 1 is ublkd faster), with the spread (min-max) beside it, the
median IOPS and mean completion latency, and the guest CPU time per I/O where recorded.
  ratio-report.py RESULTS.json [--svg FILE TITLE]   markdown on stdout; the plot as SVG to FILE
  ratio-report.py RESULTS.json --base DEVICE       the same table, with ratios to DEVICE instead
  ratio-report.py RESULTS.json --base DEVICE --cpu the ratios of CPU time per I/O to DEVICE's
                                                   (above 1 is more CPU), for devices that have it
"""
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}  # (rw, bs, qd) -> {device: {rep: (iops, clat)}}
    for r in data["results"]:
        key = r.get("workload") or f"{r['rw']} {r['bs']} qd{r['qd']}"
        rows.setdefault(key, {}).setdefault(r["device"], {})[r["rep"]] = (r["iops"], r["clat_us"],
                                                                       r.get("cpu_us_per_io"))
    return data, rows


def summarize(rows, base="kernel", metric=0):
    """metric 0: the per-repetition ratios of IOPS; 2: of CPU time per I/O (devices without it
    are left out)."""
    out = []
    for workload, devices in rows.items():
        kernel = devices[base]
        entry = {"workload": workload, "devices": {}}
        for name, reps in devices.items():
            ratios = [reps[r][metric] / kernel[r][metric] for r in reps
                      if r in kernel and reps[r][metric] is not None and kernel[r][metric]]
            if not ratios:
                continue
            cpu = [v[2] for v in reps.values() if v[2] is not None]
            entry["devices"][name] = {
                "iops": statistics.median(v[0] for v in reps.values()),
                "clat": statistics.median(v[1] for v in reps.values()),
                "cpu": statistics.median(cpu) if cpu else None,
                "ratio": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "reps": len(ratios),
            }
        out.append(entry)
    return out


def markdown(data, summary, base="kernel", what=""):
    """One table per set of devices (a null row and a loop row compare different ones)."""
    groups = {}
    for e in summary:
        groups.setdefault(tuple(e["devices"]), []).append(e)
    return "\n\n".join(table(data, rows, base, what) for rows in groups.values())


def table(data, summary, base, what=""):
    if base not in summary[0]["devices"]:
        return f"No {what or 'IOPS '}figures of {base} in these results."
    names = [n for n in summary[0]["devices"] if n != base]
    cpu = summary[0]["devices"][base]["cpu"] is not None
    unit = "IOPS (clat µs, CPU µs/IO)" if cpu else "IOPS (clat µs)"
    lines = [f"Kernel {data['kernel']}, {data['runtime']} s per run, "
             f"{summary[0]['devices'][base]['reps']} repetitions.", "",
             f"| workload | {base} {unit} | " +
             " | ".join(f"{n} {unit} | {what}{n}/{base} (min–max)" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]

    def cell(d):
        extra = f", {d['cpu']:.1f}" if d["cpu"] is not None else ""
        return f"{d['iops']:.0f} ({d['clat']:.0f}{extra})"

    for e in summary:
        cells = [e["workload"], cell(e["devices"][base])]
        for n in names:
            d = e["devices"][n]
            cells += [cell(d), f"**{d['ratio']:.2f}** ({d['min']:.2f}–{d['max']:.2f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg(data, summary, title):
    """Two panels per workload: IOPS relative to the kernel's loop (median, min-max whisker), and
    the median mean completion latency in µs (log scale)."""
    names = ["kernel"]
    for e in summary:
        names += [n for n in e["devices"] if n not in names]
    colors = ["#888888", "#1f77b4", "#ff7f0e", "#2ca02c"]  # the kernel's loop is grey
    group, bar, left, top, height = 150, 34, 60, 40, 220
    group = max(group, bar * max(len(e["devices"]) for e in summary) + 30)
    width = left + group * len(summary) + 20
    total = top * 2 + height * 2 + 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18" font-size="13">{title} ({data["kernel"]})</text>']
    # Panel 1: IOPS ratio, 0..max.
    top1 = top
    peak = max(max(d["max"] for d in e["devices"].values()) for e in summary)
    scale = height / max(1.5, peak * 1.1)
    y1 = lambda v: top1 + height - v * scale
    parts.append(f'<text x="4" y="{top1 + 10}">IOPS / kernel</text>')
    for v in (0.5, 1.0, 1.5):
        if v * scale <= height:
            parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y1(v):.1f}" y2="{y1(v):.1f}" stroke="#ccc"/>'
                         f'<text x="{left - 28}" y="{y1(v) + 4:.1f}">{v:.1f}</text>')
    # Panel 2: latency, log scale.
    top2 = top1 + height + 50
    lats = [d["clat"] for e in summary for d in e["devices"].values()]
    import math
    lo, hi = math.floor(math.log10(min(lats))), math.ceil(math.log10(max(lats)))
    hi = max(hi, lo + 1)
    y2 = lambda v: top2 + height - (math.log10(v) - lo) / (hi - lo) * height
    parts.append(f'<text x="4" y="{top2 - 6}">mean completion latency, µs (log)</text>')
    for p in range(lo, hi + 1):
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y2(10 ** p):.1f}" y2="{y2(10 ** p):.1f}" stroke="#ccc"/>'
                     f'<text x="{left - 40}" y="{y2(10 ** p) + 4:.1f}">{10 ** p}</text>')
    for i, e in enumerate(summary):
        x0 = left + i * group + 10
        parts.append(f'<text x="{x0}" y="{top2 + height + 16}">{e["workload"]}</text>')
        present = [n for n in names if n in e["devices"]]
        for j, n in enumerate(present):
            d = e["devices"][n]
            x = x0 + j * bar
            j = names.index(n)  # the device's colour is the same in every group
            c = colors[j % len(colors)]
            parts.append(f'<rect x="{x}" y="{y1(d["ratio"]):.1f}" width="{bar - 6}" height="{d["ratio"] * scale:.1f}" fill="{c}"/>')
            mid = x + (bar - 6) / 2
            parts.append(f'<line x1="{mid}" x2="{mid}" y1="{y1(d["min"]):.1f}" y2="{y1(d["max"]):.1f}" stroke="black"/>')
            parts.append(f'<rect x="{x}" y="{y2(d["clat"]):.1f}" width="{bar - 6}" height="{top2 + height - y2(d["clat"]):.1f}" fill="{c}"/>')
    for j, n in enumerate(names):
        x = left + j * 220
        parts.append(f'<rect x="{x}" y="{total - 20}" width="12" height="12" fill="{colors[j % len(colors)]}"/>'
                     f'<text x="{x + 16}" y="{total - 10}">{n}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    data, rows = load(sys.argv[1])
    if len(sys.argv) > 3 and sys.argv[2] == "--base":
        metric = 2 if sys.argv[4:5] == ["--cpu"] else 0
        print(markdown(data, summarize(rows, sys.argv[3], metric), sys.argv[3], "CPU per I/O " if metric else ""))
        return
    summary = summarize(rows)
    print(markdown(data, summary))
    if len(sys.argv) > 4 and sys.argv[2] == "--svg":
        with open(sys.argv[3], "w") as f:
            f.write(svg(data, summary, sys.argv[4]))


if __name__ == "__main__":
    main()
