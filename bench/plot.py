"""The latency distributions as one SVG chart: for each phase, the share of its requests answered within
a given time (an empirical CDF), on a log scale. Plain SVG, so the benchmark needs no plotting library."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from bench.report import quantile

# Okabe and Ito's palette, which readers with a colour vision deficiency tell apart; black for the floor.
COLORS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2", "#F0E442")
WIDTH, PLOT_HEIGHT = 760, 340
LEFT, RIGHT, TOP = 64, 24, 40
ROW, COLUMN = 18, 360  # a legend entry's height and width; two entries a row, under the chart


def latency_svg(series: dict[str, list[float]], points: int = 200) -> str:
    """`series`: a label for each phase, and its latencies in seconds; one curve each, in that order."""
    values = [v * 1000 for latencies in series.values() for v in latencies if v > 0] or [1.0]
    # A little room at each end, so no curve runs along the frame (every latency the same, say).
    lo, hi = _tick_below(min(values) * 0.99), _tick_above(max(values) * 1.01)
    width = WIDTH - LEFT - RIGHT
    legend_top = TOP + PLOT_HEIGHT + 56
    height = legend_top + ROW * math.ceil(len(series) / 2) + 8

    def x(ms: float) -> float:
        return LEFT + (math.log10(max(ms, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * width

    def y(share: float) -> float:
        return TOP + (1 - share) * PLOT_HEIGHT

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14">Latency: the share of requests answered within a time '
           f'(log scale)</text>']
    for tick in _ticks(lo, hi):
        out += [_line(x(tick), TOP, x(tick), TOP + PLOT_HEIGHT, "#dddddd"),
                f'<text x="{x(tick):.1f}" y="{TOP + PLOT_HEIGHT + 18}" text-anchor="middle">{tick:g}</text>']
    for percent in range(0, 101, 20):
        out += [_line(LEFT, y(percent / 100), LEFT + width, y(percent / 100), "#dddddd"),
                f'<text x="{LEFT - 8}" y="{y(percent / 100) + 4:.1f}" text-anchor="end">{percent}%</text>']
    out += [f'<text x="{LEFT + width / 2:.1f}" y="{TOP + PLOT_HEIGHT + 38}" text-anchor="middle">'
            f'latency (ms)</text>',
            f'<rect x="{LEFT}" y="{TOP}" width="{width}" height="{PLOT_HEIGHT}" fill="none" stroke="#888888"/>']
    for i, (label, latencies) in enumerate(series.items()):
        ordered = sorted(v * 1000 for v in latencies)
        if not ordered:
            continue
        color = COLORS[i % len(COLORS)]
        # The empirical quantile at each share: the latency within which that share of requests was answered.
        curve = [(ordered[0], 0.0)] + [(quantile(ordered, q / points), q / points) for q in range(1, points + 1)]
        coordinates = " ".join(f"{x(ms):.1f},{y(share):.1f}" for ms, share in curve)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coordinates}">'
                   f'<title>{escape(label)}</title></polyline>')
        left, top = 24 + COLUMN * (i % 2), legend_top + ROW * (i // 2)
        summary = f"{label}: p50 {quantile(ordered, 0.5):.1f} ms, p99 {quantile(ordered, 0.99):.1f} ms"
        out += [_line(left, top - 4, left + 24, top - 4, color, 2),
                f'<text x="{left + 30}" y="{top}">{escape(summary)}</text>']
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _ticks(lo: float, hi: float):
    """1, 2 and 5 times each power of ten from `lo` to `hi`."""
    decade = 10 ** math.floor(math.log10(lo))
    while decade <= hi:
        for step in (1, 2, 5):
            if lo * 0.999 <= decade * step <= hi * 1.001:
                yield decade * step
        decade *= 10


def _tick_below(ms: float) -> float:
    """The largest tick at or below `ms` (from a decade lower, which log10's rounding cannot skip)."""
    return max(t for t in _ticks(10 ** (math.floor(math.log10(ms)) - 1), ms) if t <= ms * 1.001)


def _tick_above(ms: float) -> float:
    """The smallest tick at or above `ms`."""
    return min(t for t in _ticks(ms, 10 ** (math.ceil(math.log10(ms)) + 1)) if t >= ms * 0.999)


def _line(x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1) -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
            f'stroke-width="{width:g}"/>')
