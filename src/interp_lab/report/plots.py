"""Plots for people: a self-contained SVG heatmap (HTML) and, with matplotlib installed, a PNG."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

import numpy as np

from interp_lab.io.atomic import write_bytes_atomic


def _color(v: float, lo: float, hi: float) -> str:
    """White to blue for the value's place between lo and hi (diverging red/blue when lo < 0 < hi)."""
    if lo < 0 < hi:
        t = v / (hi if v >= 0 else -lo)
        r, g, b = (255 * (1 - t), 255 * (1 - t * 0.6), 255) if t >= 0 else (255, 255 * (1 + t * 0.7), 255 * (1 + t))
    else:
        t = 0.0 if hi == lo else (v - lo) / (hi - lo)
        r, g, b = 255 * (1 - t * 0.85), 255 * (1 - t * 0.55), 255
    return f"rgb({int(r)},{int(g)},{int(b)})"


def heatmap_html(values: np.ndarray, rows: list[str], cols: list[str], title: str, path: str | os.PathLike) -> Path:
    """[rows, cols] values as an SVG heatmap in one self-contained HTML file (hover shows each value)."""
    values = np.asarray(values, dtype=float)
    cw, ch, left, top = 46, 18, 70, 90
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + cw * len(cols) + 20}' "
             f"height='{top + ch * len(rows) + 20}' font-family='system-ui,sans-serif' font-size='11'>"]
    for j, c in enumerate(cols):
        x = left + j * cw + cw / 2
        parts.append(f"<text transform='translate({x:.0f},{top - 6}) rotate(-50)'>{escape(c)}</text>")
    for i, r in enumerate(rows):
        y = top + i * ch
        parts.append(f"<text x='{left - 6}' y='{y + 13}' text-anchor='end'>{escape(r)}</text>")
        for j in range(len(cols)):
            v = values[i, j]
            fill = _color(v, lo, hi) if np.isfinite(v) else "#eee"
            parts.append(f"<rect x='{left + j * cw}' y='{y}' width='{cw - 1}' height='{ch - 1}' fill='{fill}'>"
                         f"<title>{escape(r)} / {escape(cols[j])}: {v:.4g}</title></rect>")
    parts.append("</svg>")
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body style='font-family:system-ui,sans-serif;margin:20px'><h3>{escape(title)}</h3>"
            f"<p style='color:#555'>range {lo:.4g} to {hi:.4g}</p>{''.join(parts)}</body></html>\n")
    write_bytes_atomic(path, html.encode("utf-8"))
    return Path(path)


def heatmap_png(values: np.ndarray, rows: list[str], cols: list[str], title: str, path: str | os.PathLike, *,
                required: bool = True) -> Path | None:
    """The same heatmap as a PNG (matplotlib, from the ``plots`` extra). Without matplotlib: a UsageError
    naming the extra, or with ``required=False``, None (nothing written)."""
    from interp_lab.io.figures import pyplot, save_png

    plt = pyplot(required)
    if plt is None:
        return None
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(cols) + 2), max(3, 0.25 * len(rows) + 1.5)))
    im = ax.imshow(values, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
