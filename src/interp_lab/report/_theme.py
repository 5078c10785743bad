"""The look of report.html: its stylesheet, and inline SVG for effect sizes with intervals, control strips
and signature sparklines.

No script and no external resource; every label is escaped. Sizes are fixed, so the output is deterministic.
"""

from __future__ import annotations

from html import escape
from typing import Any

from interp_lab.report import _format as f

POS, NEG, GREY = "#15803d", "#b91c1c", "#6b7280"
CSS = """
:root{--fg:#1b2230;--muted:#5f6b7a;--line:#e3e7ed;--bg:#f5f6f8;--panel:#fff;--soft:#f8f9fb;--accent:#2456c5;
  --pos:#15803d;--neg:#b91c1c;--amber:#b45309}
*{box-sizing:border-box}html{background:var(--bg)}
body{margin:0;color:var(--fg);
  font:14px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:24px;line-height:1.25;margin:2px 0 6px}h2{font-size:17px;margin:0 0 10px}
h3{font-size:16px;margin:0}h3 code{font-size:15px}
h4{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:18px 0 6px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.nw{white-space:nowrap}.muted{color:var(--muted)}.small{font-size:12.5px}
.eyebrow{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.06em}
.meta{color:var(--muted);margin-bottom:10px}.meta code{color:var(--fg)}
.panel,.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
  margin:16px 0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:0 16px;align-items:start}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:middle}
th{font-size:12px;font-weight:600;color:var(--muted);background:var(--soft)}
td.n{font-variant-numeric:tabular-nums;white-space:nowrap}tr:last-child td{border-bottom:0}
.banner{background:#fdecec;border:1px solid #f3b4b4;border-left:6px solid #c62828;color:#7f1d1d;
  border-radius:8px;padding:12px 16px;margin:16px 0}
.banner strong{display:block;font-size:16px;letter-spacing:.02em}
.box{border-radius:8px;padding:10px 16px;margin:12px 0;border:1px solid}
.box ul{margin:4px 0;padding-left:20px}.warn{background:#fff8e6;border-color:#f1d9a6}
.note{background:#f1f5fb;border-color:#d5e0f0}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
  margin:2px 4px 2px 0;white-space:nowrap;border:1px solid transparent}
.t-causal{background:#dbe6fe;color:#1e40af;border-color:#b7cbfb}
.t-held_out{background:#d5f5ee;color:#0f5e55;border-color:#a7e6d8}
.t-discovery_only,.t-imported,.t-other{background:#eceef2;color:#4b5563;border-color:#d9dde3}
.d-promotes{background:#e3f6e8;color:#166534}.d-suppresses{background:#fde8e8;color:#991b1b}
.flag{background:#fef3c7;color:#92400e;border-color:#f5d98b}.planted{background:#efe9fe;color:#5b21b6}
.yes{color:var(--pos);font-weight:600}.summary .pill{font-size:11px;padding:0 7px}.no{color:var(--muted)}
.card-head{display:grid;grid-template-columns:44px 1fr 300px;gap:14px;align-items:start}
.rank{width:38px;height:38px;border-radius:50%;background:var(--soft);border:1px solid var(--line);
  display:flex;align-items:center;justify-content:center;font-weight:700;font-size:15px}
.label{font-weight:500}
.imp{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:8px 10px}
.imp-top{display:flex;justify-content:space-between;align-items:baseline}
.imp-val{font-size:20px;font-weight:700}
.comp{display:grid;grid-template-columns:104px 1fr 44px;gap:6px;align-items:center;font-size:12px}
.comp>span:first-child{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{height:7px;background:#e6e9ef;border-radius:4px;overflow:hidden}
.fill{height:100%;background:var(--accent)}
.kv3{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:10px;margin-top:10px}
.kv{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.kv b{font-size:13px}
.flags{margin:10px 0 0;padding:8px 12px;background:#fffbeb;border:1px solid #f5e1a4;border-radius:8px;
  font-size:13px}
.flags ul{margin:0;padding-left:18px}
.ex{display:grid;grid-template-columns:96px 1fr 210px;gap:12px;padding:6px 0;
  border-bottom:1px dashed var(--line);align-items:start}
.ex:last-child{border-bottom:0}.actbar{height:5px;background:#dbe3f3;border-radius:3px;margin-top:3px}
.actbar span{display:block;height:100%;background:var(--accent);border-radius:3px}
.ctx{white-space:pre-wrap;word-break:break-word;line-height:1.9}.tok{border-radius:3px;padding:1px 1px}
.fp{display:flex;flex-wrap:wrap;gap:2px 16px;font-size:12.5px;margin:4px 0 8px}
.ell{color:var(--muted);margin:0 4px}.focus{outline:2px solid #111827;outline-offset:1px;font-weight:700}
.exmeta{font-size:12px;color:var(--muted)}details{margin:10px 0}
summary{cursor:pointer;color:var(--muted);font-weight:500}details[open] summary{margin-bottom:6px}
svg{display:block}svg text{font:10px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:#6b7280}
footer{color:var(--muted);font-size:12px;margin-top:24px;text-align:center}
@media (max-width:820px){
  .card-head{grid-template-columns:1fr}.ex{grid-template-columns:1fr}.grid2{display:block}}
"""


def _esc(x: Any) -> str:
    return escape(f.text(x), quote=True)


def _nice(m: float) -> float:
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100):
        if m <= step:
            return step
    return m


def ci_bar(value: Any, interval: Any, lo: float = -1.0, hi: float = 1.0, width: int = 190, ref: float = 0.0) -> str:
    """A point and its 95% interval on a fixed axis [lo, hi], with a dashed line at ``ref`` (no effect).

    Coloured by sign when the interval excludes ``ref``, grey when it does not.
    """
    v, ci = f.fnum(value), f.pair(interval)
    if v is None:
        return ""
    pad, h = 8, 30

    def x(t: float) -> float:
        return pad + (min(max(t, lo), hi) - lo) / (hi - lo) * (width - 2 * pad)

    solid = ci is None or ci[0] > ref or ci[1] < ref
    color = (POS if v >= ref else NEG) if solid else GREY
    out = [f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" '
           f'aria-label="{_esc(f.with_ci(v, interval))} on [{_esc(f.short(lo))}, {_esc(f.short(hi))}]">',
           f'<line x1="{pad}" y1="11" x2="{width - pad}" y2="11" stroke="#d7dce4"/>',
           f'<line x1="{x(ref):.1f}" y1="3" x2="{x(ref):.1f}" y2="19" stroke="#9aa3af" stroke-dasharray="2,2"/>']
    for t, anchor, tx in ((lo, "start", pad), (ref, "middle", x(ref)), (hi, "end", width - pad)):
        out.append(f'<text x="{tx:.1f}" y="{h - 1}" text-anchor="{anchor}">{_esc(f.short(t))}</text>')
    if ci:
        out.append(f'<line x1="{x(ci[0]):.1f}" y1="11" x2="{x(ci[1]):.1f}" y2="11" stroke="{color}" '
                   'stroke-width="3" stroke-linecap="round" opacity=".55"/>')
    out.append(f'<circle cx="{x(v):.1f}" cy="11" r="4.5" fill="{color}" stroke="#fff" stroke-width="1.2"/></svg>')
    return "".join(out)


def sym_scale(*values: Any) -> float:
    nums = [abs(v) for v in values if v is not None]
    return _nice(max(nums + [0.01]) * 1.08)


def _axis_labels(x: Any, lo: float, hi: float, y: float, width: int, pad: int) -> str:
    """Labels at both ends of an axis, and 0 when it is inside and clear of them."""
    out = (f'<text x="{pad}" y="{y}">{_esc(f.num(lo))}</text>'
           f'<text x="{width - pad}" y="{y}" text-anchor="end">{_esc(f.num(hi))}</text>')
    if lo < 0 < hi and pad + 30 < x(0) < width - pad - 30:
        out += f'<text x="{x(0):.1f}" y="{y}" text-anchor="middle">0</text>'
    return out


def controls_strip(k: dict[str, Any], width: int = 300) -> str:
    """Controls' effects as stacked dots (label-permuted refits in blue), their threshold as a dashed line, this
    feature as a diamond.

    The axis spans the controls; a feature far beyond them is drawn at the edge with its value, so that
    the controls' spread stays readable.
    """
    ctl = f.d(k.get("controls"))
    effects = [v for v in (f.fnum(e) for e in f.lst(ctl.get("effects"))) if v is not None]
    permuted = f.d(f.d(ctl.get("families")).get("permuted_label"))
    blue = sorted(v for v in (f.fnum(e) for e in f.lst(permuted.get("effects"))) if v is not None)
    mean, ci, thr = f.fnum(k.get("mean_effect")), f.pair(k.get("ci")), f.fnum(ctl.get("threshold"))
    if not effects or mean is None:
        return ""
    core = effects + [0.0] + ([thr] if thr is not None else [])
    lo, hi = min(core), max(core)
    span = (hi - lo) or abs(mean) or 1.0
    off = 0 if lo - 1.5 * span <= mean <= hi + 1.5 * span else (1 if mean > hi else -1)
    if not off:
        lo, hi = min(lo, mean), max(hi, mean)
    span = (hi - lo) or 1.0
    lo, hi, pad = lo - 0.06 * span, hi + 0.06 * span, 8

    def x(t: float) -> float:
        return pad + (min(max(t, lo), hi) - lo) / (hi - lo) * (width - 2 * pad)

    levels: dict[int, int] = {}
    dots = []
    for e in sorted(effects):
        b = round(x(e) / 6)
        levels[b] = levels.get(b, 0) + 1
        dots.append((x(e), levels[b] - 1, "#9aa3af"))
    for e in blue:  # label-permuted refits are among ``effects``: recolour one dot of that value
        cx = x(e)
        hit = next((i for i, d in enumerate(dots) if d[0] == cx and d[2] != "#2456c5"), None)
        if hit is not None:
            dots[hit] = (cx, dots[hit][1], "#2456c5")
    top = min(max(levels.values()), 8)
    base = 22 + 5 * top
    y, h = base + 7, base + 30
    color = POS if k.get("strong_causal") else "#374151"
    out = [f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" aria-label="{len(effects)} '
           f'controls; threshold {_esc(f.signed(thr))}; this feature {_esc(f.signed(mean))}">',
           f'<line x1="{pad}" y1="{y}" x2="{width - pad}" y2="{y}" stroke="#d7dce4"/>']
    if lo < 0 < hi:
        out.append(f'<line x1="{x(0):.1f}" y1="14" x2="{x(0):.1f}" y2="{y + 4}" stroke="#9aa3af" '
                   'stroke-dasharray="2,2"/>')
    out += [f'<circle cx="{cx:.1f}" cy="{base - 5 * min(lv, top):.1f}" r="2.6" fill="{c}" fill-opacity=".85"/>'
            for cx, lv, c in dots]
    if thr is not None:
        out.append(f'<line x1="{x(thr):.1f}" y1="12" x2="{x(thr):.1f}" y2="{y + 4}" stroke="#d97706" '
                   'stroke-width="1.6" stroke-dasharray="4,2"/>')
    if ci and not off:
        out.append(f'<line x1="{x(ci[0]):.1f}" y1="{y}" x2="{x(ci[1]):.1f}" y2="{y}" stroke="{color}" '
                   'stroke-width="3" opacity=".5"/>')
    m = x(mean)
    out.append(f'<path d="M{m:.1f},{y - 6} L{m + 5:.1f},{y} L{m:.1f},{y + 6} L{m - 5:.1f},{y} Z" fill="{color}"/>')
    if off:
        anchor, tx = ("end", width - pad) if off > 0 else ("start", pad)
        arrow = f"this feature {f.signed(mean)} (off scale) " + ("→" if off > 0 else "←")
        if off < 0:
            arrow = "← " + arrow[:-2]
        out.append(f'<text x="{tx}" y="9" text-anchor="{anchor}" style="fill:{color};font-weight:600">'
                   f"{_esc(arrow)}</text>")
    out.append(_axis_labels(x, lo, hi, h - 2, width, pad) + "</svg>")
    return "".join(out)


def sparkline(values: list[float], width: int = 320, h: int = 36) -> str:
    if len(values) < 2:
        return ""
    lo, hi = min(values + [0.0]), max(values + [0.0])
    span = (hi - lo) or 1.0
    step = (width - 2) / (len(values) - 1)
    pts = " ".join(f"{1 + i * step:.1f},{h - 2 - (v - lo) / span * (h - 4):.1f}" for i, v in enumerate(values))
    zero = h - 2 - (0 - lo) / span * (h - 4)
    return (f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" aria-label="signature">'
            f'<line x1="0" y1="{zero:.1f}" x2="{width}" y2="{zero:.1f}" stroke="#d7dce4"/>'
            f'<polyline points="{pts}" fill="none" stroke="#2456c5" stroke-width="1"/></svg>')


def page(title: str, body: str, css: str = "") -> str:
    """A self-contained HTML page: ``title`` already escaped, ``body`` the markup inside <main>, the theme's
    CSS plus ``css``."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width,initial-scale=1\"><title>{title}</title><style>{CSS}{css}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
