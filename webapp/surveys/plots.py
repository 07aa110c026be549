"""Inline SVG plots of the results (drawn on the server: no script, no CDN)."""
from __future__ import annotations

import math
from html import escape

W, H, LEFT, BOTTOM, TOP = 520, 260, 44, 46, 16
COLOURS = ("#8d99ae", "#e07a5f", "#2456c6", "#3d9970", "#b56576")


def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def mos_bars(conditions: dict, labels: dict, *, title: str, lo: float = 1, hi: float = 5) -> str:
    """Bars of the mean per condition with 95 % CI whiskers on a lo..hi axis.

    Parameters
    ----------
    conditions : dict
        condition -> {"n", "mean", "ci_low", "ci_high"} (stats.mean_ci).
    labels : dict
        condition -> label shown under its bar.
    """
    n = max(len(conditions), 1)
    plot_w, plot_h = W - LEFT - 10, H - TOP - BOTTOM
    y = lambda v: TOP + plot_h * (1 - (min(max(v, lo), hi) - lo) / (hi - lo))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'class="plot" aria-label="{escape(title)}">',
             f'<text x="{LEFT}" y="11" font-size="12" font-weight="600">{escape(title)}</text>']
    for v in range(int(lo), int(hi) + 1):
        parts.append(f'<line x1="{LEFT}" x2="{W - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'stroke="#ddd"/><text x="{LEFT - 6}" y="{y(v) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{v}</text>')
    slot = plot_w / n
    for k, (cond, d) in enumerate(conditions.items()):
        x0 = LEFT + k * slot + slot * 0.2
        bw = slot * 0.6
        cx = x0 + bw / 2
        parts.append(f'<text x="{cx:.1f}" y="{H - BOTTOM + 16}" font-size="11" '
                     f'text-anchor="middle">{escape(labels.get(cond, cond))}</text>'
                     f'<text x="{cx:.1f}" y="{H - BOTTOM + 30}" font-size="10" fill="#666" '
                     f'text-anchor="middle">n={d.get("n", 0)}</text>')
        if not _ok(d.get("mean")):
            continue
        top = y(d["mean"])
        parts.append(f'<rect x="{x0:.1f}" y="{top:.1f}" width="{bw:.1f}" '
                     f'height="{y(lo) - top:.1f}" fill="{COLOURS[k % len(COLOURS)]}">'
                     f'<title>{escape(cond)}: {d["mean"]:.2f}</title></rect>'
                     f'<text x="{cx:.1f}" y="{top - 4:.1f}" font-size="11" '
                     f'text-anchor="middle">{d["mean"]:.2f}</text>')
        if _ok(d.get("ci_low")) and _ok(d.get("ci_high")):
            a, b = y(d["ci_low"]), y(d["ci_high"])
            parts.append(f'<path class="ci" d="M{cx:.1f},{a:.1f}V{b:.1f}M{cx - 6:.1f},{a:.1f}'
                         f'h12M{cx - 6:.1f},{b:.1f}h12" stroke="#222" fill="none"/>')
    parts.append("</svg>")
    return "".join(parts)


def ab_histogram(scores, *, title: str) -> str:
    """Counts of the signed confidences -2..2 (wrong to right guesses)."""
    values = [-2, -1, 0, 1, 2]
    counts = [sum(1 for s in scores if s == v) for v in values]
    top = max(counts + [1])
    plot_w, plot_h = W - LEFT - 10, H - TOP - BOTTOM
    slot = plot_w / len(values)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'class="plot" aria-label="{escape(title)}">',
             f'<text x="{LEFT}" y="11" font-size="12" font-weight="600">{escape(title)}</text>']
    for k, (v, c) in enumerate(zip(values, counts)):
        x0 = LEFT + k * slot + slot * 0.15
        h = plot_h * c / top
        colour = "#e07a5f" if v < 0 else "#3d9970" if v > 0 else "#8d99ae"
        parts.append(f'<rect x="{x0:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{h:.1f}" fill="{colour}"><title>{v:+d}: {c}</title></rect>'
                     f'<text x="{x0 + slot * 0.35:.1f}" y="{TOP + plot_h - h - 4:.1f}" '
                     f'font-size="11" text-anchor="middle">{c}</text>'
                     f'<text x="{x0 + slot * 0.35:.1f}" y="{H - BOTTOM + 16}" font-size="11" '
                     f'text-anchor="middle">{f"{v:+d}" if v else "0"}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{H - 8}" font-size="11" '
                 f'text-anchor="middle">signed confidence (wrong &lt; 0 &lt; right)</text></svg>')
    return "".join(parts)
