#!/usr/bin/env python3
"""Draws the relay sweep of a bench/compare result as an SVG, with no plotting library.

    bench/chart.py bench/results/2026-12-02.json docs/relay.svg

Left: delivered relays a second against offered (the diagonal is "everything
delivered"). Right: p99 latency against offered, on a log scale. One line per
server; each point is the median over the rounds of that offered rate.
"""

import json
import math
import statistics
import sys
from pathlib import Path

COLOURS = {"switchboard": "#1b7f3b", "node": "#c0392b", "switchboard-redis": "#2a5db0"}
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 460, 320, 64, 48, 36, 16


def series(result):
    """server -> [(offered, delivered median, p99 median)] sorted by offered."""
    out = {}
    for server, by in result["raw"].items():
        points = {}
        for run in by.get("relay", []):
            for step in run["steps"]:
                p = points.setdefault(step["offeredPerSec"], ([], []))
                p[0].append(step["deliveredPerSec"])
                if step["latencyMs"]["p99"] is not None:
                    p[1].append(step["latencyMs"]["p99"])
        out[server] = sorted(
            (o, statistics.median(d), statistics.median(l) if l else None) for o, (d, l) in points.items())
    return out


def panel(x0, title, xs_max, y_max, y_log, lines, y_label):
    """One chart panel: axes, ticks, and the polylines [(colour, [(x, y)])]."""
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    y_min = 0.05 if y_log else 0.0

    def px(x):
        return x0 + PAD_L + iw * x / xs_max

    def py(y):
        if y_log:
            y = max(y, y_min)
            return PAD_T + ih * (1 - (math.log10(y) - math.log10(y_min)) / (math.log10(y_max) - math.log10(y_min)))
        return PAD_T + ih * (1 - y / y_max)

    parts = [f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>',
             f'<rect x="{x0 + PAD_L}" y="{PAD_T}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>']
    for i in range(6):
        x = xs_max * i / 5
        parts.append(f'<text x="{px(x)}" y="{H - PAD_B + 16}" text-anchor="middle">{x / 1000:.0f}k</text>')
    ticks = [10 ** e for e in range(math.floor(math.log10(y_min)), math.ceil(math.log10(y_max)) + 1)] if y_log \
        else [y_max * i / 5 for i in range(6)]
    for y in ticks:
        if y_log and not (y_min <= y <= y_max):
            continue
        label = (f"{y:g}" if y_log else f"{y / 1000:.0f}k")
        parts.append(f'<line x1="{x0 + PAD_L}" x2="{x0 + W - PAD_R}" y1="{py(y)}" y2="{py(y)}" stroke="#eee"/>')
        parts.append(f'<text x="{x0 + PAD_L - 6}" y="{py(y) + 4}" text-anchor="end">{label}</text>')
    parts.append(f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle">offered relays per second</text>')
    parts.append(f'<text transform="translate({x0 + 14},{PAD_T + ih / 2}) rotate(-90)" text-anchor="middle">'
                 f'{y_label}</text>')
    for colour, pts in lines:
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts]
    return parts


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    result = json.loads(Path(sys.argv[1]).read_text())
    data = series(result)
    x_max = max(o for pts in data.values() for o, _, _ in pts)
    d_max = max(d for pts in data.values() for _, d, _ in pts)
    l_max = max((l for pts in data.values() for _, _, l in pts if l is not None), default=1)
    colour = lambda s: COLOURS.get(s, "#555")  # noqa: E731
    left = panel(0, "Delivered", x_max, max(x_max, d_max), False,
                 [("#bbb", [(0, 0), (x_max, x_max)])] + [(colour(s), [(o, d) for o, d, _ in p]) for s, p in data.items()],
                 "delivered per second")
    right = panel(W, "p99 latency", x_max, 10 ** math.ceil(math.log10(l_max)), True,
                  [(colour(s), [(o, l) for o, _, l in p]) for s, p in data.items()], "milliseconds (log)")
    # Bottom right of the left panel: below the diagonal, where no line goes.
    legend = [f'<g transform="translate({W - PAD_R - 150},{H - PAD_B - 18 * (len(data) - i) - 4})"><rect width="12" height="12" '
              f'fill="{colour(s)}"/><text x="18" y="11">{s}</text></g>' for i, s in enumerate(data)]
    note = (f'<text x="{W}" y="{H + 14}" text-anchor="middle" fill="#666">{result["date"]}, '
            f'{result["machine"]["cpu"]}, median of {result["rounds"]} rounds, each server pinned to one core</text>')
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W * 2}" height="{H + 24}" font-family="sans-serif" '
           f'font-size="12">', '<rect width="100%" height="100%" fill="white"/>', *left, *right, *legend, note, "</svg>"]
    Path(sys.argv[2]).write_text("\n".join(svg) + "\n")
    print(f"written: {sys.argv[2]}")


if __name__ == "__main__":
    main()
