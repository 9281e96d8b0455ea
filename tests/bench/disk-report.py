#!/usr/bin/env python3
"""The disk benchmark's report (tests/bench/disk.sh): per workload, the median over repetitions of
the per-repetition IOPS ratio of each ublkd device to the kernel's loop (above 1 is ublkd
faster), with the spread (min-max) beside it, and the median IOPS and mean completion latency.
  disk-report.py RESULTS.json [--svg FILE]   markdown on stdout; the plot as SVG to FILE
"""
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}  # (rw, bs, qd) -> {device: {rep: (iops, clat)}}
    for r in data["results"]:
        key = (r["rw"], r["bs"], r["qd"])
        rows.setdefault(key, {}).setdefault(r["device"], {})[r["rep"]] = (r["iops"], r["clat_us"])
    return data, rows


def summarize(rows):
    out = []
    for (rw, bs, qd), devices in rows.items():
        kernel = devices["kernel"]
        entry = {"workload": f"{rw} {bs} qd{qd}", "devices": {}}
        for name, reps in devices.items():
            ratios = [reps[r][0] / kernel[r][0] for r in reps if r in kernel and kernel[r][0] > 0]
            entry["devices"][name] = {
                "iops": statistics.median(v[0] for v in reps.values()),
                "clat": statistics.median(v[1] for v in reps.values()),
                "ratio": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "reps": len(ratios),
            }
        out.append(entry)
    return out


def markdown(data, summary):
    names = [n for n in summary[0]["devices"] if n != "kernel"]
    lines = [f"Kernel {data['kernel']}, {data['runtime']} s per run, "
             f"{summary[0]['devices']['kernel']['reps']} repetitions.", "",
             "| workload | kernel loop IOPS (clat µs) | " +
             " | ".join(f"{n} IOPS (clat µs) | {n}/kernel (min–max)" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    for e in summary:
        k = e["devices"]["kernel"]
        cells = [e["workload"], f"{k['iops']:.0f} ({k['clat']:.0f})"]
        for n in names:
            d = e["devices"][n]
            cells += [f"{d['iops']:.0f} ({d['clat']:.0f})", f"**{d['ratio']:.2f}** ({d['min']:.2f}–{d['max']:.2f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg(data, summary):
    """Two panels per workload: IOPS relative to the kernel's loop (median, min-max whisker), and
    the median mean completion latency in µs (log scale)."""
    names = ["kernel"] + [n for n in summary[0]["devices"] if n != "kernel"]
    colors = ["#888888", "#1f77b4", "#ff7f0e", "#2ca02c"]  # the kernel's loop is grey
    group, bar, left, top, height = 150, 34, 60, 40, 220
    width = left + group * len(summary) + 20
    total = top * 2 + height * 2 + 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18" font-size="13">ublkd loop vs kernel loop, O_DIRECT file on ext4 on virtio ({data["kernel"]})</text>']
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
        for j, n in enumerate(names):
            d = e["devices"][n]
            x = x0 + j * bar
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
    summary = summarize(rows)
    print(markdown(data, summary))
    if len(sys.argv) > 3 and sys.argv[2] == "--svg":
        with open(sys.argv[3], "w") as f:
            f.write(svg(data, summary))


if __name__ == "__main__":
    main()
