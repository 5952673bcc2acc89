"""CMC curves as a small hand-written SVG.

matplotlib took about 0.5 s to import and 0.3 s per figure, a large share of a small run's fixed
cost, for two line plots per run; MLflow's artifact viewer shows ``.svg`` files as images
(its ``IMAGE_EXTENSIONS``), and browsers, editors and LaTeX converters read them too.
"""

from __future__ import annotations

import itertools
from xml.sax.saxutils import escape, quoteattr

__all__ = ["cmc_svg", "rank_ticks"]

# matplotlib's default cycle ("tab10"), so the colours match the earlier PNGs
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 500, 350
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 30, 44  # plot-area margins


def rank_ticks(length: int, most: int = 10) -> list[int]:
    """Integer rank ticks 1, s, 2s, ... with a 1-2-5 step s, fewer than ``most`` steps."""
    step = next(10**k * mult for k in itertools.count() for mult in (1, 2, 5) if length // (10**k * mult) < most)
    return sorted({1, *range(step, length + 1, step)})


def cmc_svg(curves: dict[str, list[list[float]]], title: str) -> str:
    """Per group (a fold): each seed's curve thin and their mean thick, in percent against
    integer ranks; a group of one curve is drawn as its own mean. Rates are fractions in [0, 1]."""
    groups = [(label, group) for label, group in curves.items() if group]
    length = max((min(len(c) for c in group) for _, group in groups), default=1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(rank: float) -> float:
        return LEFT + (plot_w * (rank - 1) / (length - 1) if length > 1 else plot_w / 2)

    def y(percent: float) -> float:
        return TOP + plot_h * (1 - percent / 100)

    def points(rates: list[float]) -> str:
        return " ".join(f"{x(i + 1):.2f},{y(100 * r):.2f}" for i, r in enumerate(rates))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" font-size="10">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text class="title" x="{LEFT + plot_w / 2:.1f}" y="{TOP - 10}" text-anchor="middle">{escape(title)}</text>']
    for pct in range(0, 101, 20):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(pct):.2f}" y2="{y(pct):.2f}" stroke="#b0b0b0" '
                   f'stroke-opacity="0.3"/>')
        out.append(f'<text class="ytick" x="{LEFT - 6}" y="{y(pct) + 3.5:.2f}" text-anchor="end">{pct}</text>')
    for rank in rank_ticks(length):
        out.append(f'<line x1="{x(rank):.2f}" x2="{x(rank):.2f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#b0b0b0" '
                   f'stroke-opacity="0.3"/>')
        out.append(f'<text class="xtick" x="{x(rank):.2f}" y="{TOP + plot_h + 14}" text-anchor="middle">{rank}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black" '
               f'stroke-width="0.8"/>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">rank</text>')
    out.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">identification rate (%)</text>')

    legend = []
    for i, (label, group) in enumerate(groups):
        colour = PALETTE[i % len(PALETTE)]
        n = min(len(c) for c in group)
        rows = [[float(v) for v in c[:n]] for c in group]
        mean = [sum(col) / len(col) for col in zip(*rows)]
        if len(rows) > 1:
            for row in rows:
                out.append(f'<polyline class="seed" points="{points(row)}" fill="none" stroke="{colour}" '
                           f'stroke-opacity="0.3" stroke-width="0.8"/>')
        name = (f"{label}: mean of {len(rows)}" if len(rows) > 1 else label)
        out.append(f'<polyline class="mean" data-label={quoteattr(name)} points="{points(mean)}" fill="none" '
                   f'stroke="{colour}" stroke-width="2"/>')
        if n <= 20:
            out.extend(f'<circle cx="{x(k + 1):.2f}" cy="{y(100 * r):.2f}" r="2.2" fill="{colour}"/>'
                       for k, r in enumerate(mean))
        if name:
            legend.append((name, colour))
    if legend:
        box_w = 30 + 6 * max(len(name) for name, _ in legend)
        x0, y0 = LEFT + plot_w - box_w - 6, TOP + plot_h - 8 - 14 * len(legend)
        out.append(f'<rect class="legend" x="{x0}" y="{y0 - 4}" width="{box_w}" height="{14 * len(legend) + 6}" '
                   f'fill="white" fill-opacity="0.8" stroke="#cccccc"/>')
        for k, (name, colour) in enumerate(legend):
            row_y = y0 + 14 * k + 6
            out.append(f'<line x1="{x0 + 5}" x2="{x0 + 22}" y1="{row_y}" y2="{row_y}" stroke="{colour}" stroke-width="2"/>')
            out.append(f'<text x="{x0 + 27}" y="{row_y + 3.5}" font-size="9">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
