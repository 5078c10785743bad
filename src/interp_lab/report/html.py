"""report.html: one self-contained file (inline CSS and SVG, no script, no external resource).

Every string from the evidence (labels, texts, tokens, ids) is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from interp_lab.report._format import (
    causal_verdict,
    ci,
    context_tokens,
    discovery,
    heldout,
    num,
    pval,
    signed,
    statistic,
    with_ci,
)

CSS = """
:root{--fg:#1d2330;--muted:#5b6474;--line:#e3e6ec;--bg:#fff;--soft:#f6f7f9;--pro:#1f7a4d;--sup:#b4372b;
--causal:#1f5fbf;--held:#2a8a5a;--disc:#8a8f99;--warn:#a15c00}
*{box-sizing:border-box}body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:15px;margin:0}.muted{color:var(--muted)}code,.mono{font-family:ui-monospace,
SFMono-Regular,Menlo,monospace;font-size:12.5px}table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;font-size:12.5px}td.num{font-variant-numeric:tabular-nums}
.banner{background:#fdecea;border:1px solid #f5b7b1;color:#8e1b10;padding:10px 14px;border-radius:6px;
font-weight:600;margin:12px 0}.box{background:#fff8e6;border:1px solid #f1d9a6;border-radius:6px;
padding:8px 14px;margin:10px 0}.box li{margin:2px 0}.badge{display:inline-block;padding:1px 8px;border-radius:10px;
font-size:12px;font-weight:600;color:#fff;margin-right:4px}.t-causal{background:var(--causal)}
.t-held_out{background:var(--held)}.t-discovery_only{background:var(--disc)}.d-promotes{background:var(--pro)}
.d-suppresses{background:var(--sup)}.flag{background:var(--warn)}.card{border:1px solid var(--line);
border-radius:8px;padding:14px 16px;margin:14px 0}.card header{display:flex;gap:10px;align-items:baseline;
flex-wrap:wrap;margin-bottom:8px}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));
gap:6px 18px}.kv b{font-weight:600}.ex{padding:4px 0;border-bottom:1px dashed var(--line)}
.tok{padding:1px 0;border-radius:3px;white-space:pre}.focus{outline:2px solid #1f5fbf;outline-offset:0}
.strong{color:var(--pro);font-weight:600}.weak{color:var(--muted)}details{margin:8px 0}summary{cursor:pointer;
color:var(--muted)}svg text{font:11px system-ui,sans-serif;fill:var(--muted)}
"""


def _e(x: Any) -> str:
    return escape("" if x is None else str(x), quote=True)


def _badge(text: str, cls: str) -> str:
    return f'<span class="badge {cls}">{_e(text)}</span>'


def _ci_bar(value: Any, pair: Any, lo: float = -1.0, hi: float = 1.0, width: int = 220) -> str:
    """A horizontal axis from lo to hi with a zero line, the point and its interval."""
    if value is None:
        return ""
    pad = 6

    def x(v: float) -> float:
        v = min(max(float(v), lo), hi)
        return pad + (v - lo) / (hi - lo) * (width - 2 * pad)

    color = "#1f7a4d" if value >= 0 else "#b4372b"
    parts = [f'<svg width="{width}" height="26" role="img" aria-label="{_e(num(value))} {_e(ci(pair))}">',
             f'<line x1="{pad}" y1="13" x2="{width - pad}" y2="13" stroke="#d5d9e0"/>',
             f'<line x1="{x(0):.1f}" y1="5" x2="{x(0):.1f}" y2="21" stroke="#9aa1ad" stroke-dasharray="2,2"/>']
    if pair and pair[0] is not None and pair[1] is not None:
        parts.append(f'<line x1="{x(pair[0]):.1f}" y1="13" x2="{x(pair[1]):.1f}" y2="13" stroke="{color}" '
                     f'stroke-width="3" stroke-linecap="round"/>')
    parts.append(f'<circle cx="{x(value):.1f}" cy="13" r="4.5" fill="{color}"/></svg>')
    return "".join(parts)


def _controls_strip(k: dict[str, Any], width: int = 260) -> str:
    """The controls' effects as dots, their threshold as a line, the feature's effect as a diamond."""
    ctl = k.get("controls") or {}
    effects = [e for e in ctl.get("effects") or [] if e is not None]
    mean = k.get("mean_effect")
    if not effects or mean is None:
        return ""
    values = effects + [mean] + ([ctl["threshold"]] if ctl.get("threshold") is not None else [])
    lo, hi = min(values + [0.0]), max(values + [0.0])
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    pad = 6

    def x(v: float) -> float:
        return pad + (v - lo) / (hi - lo) * (width - 2 * pad)

    parts = [f'<svg width="{width}" height="34" role="img" aria-label="controls">',
             f'<line x1="{x(0):.1f}" y1="4" x2="{x(0):.1f}" y2="26" stroke="#c3c8d0" stroke-dasharray="2,2"/>']
    for e in effects:
        parts.append(f'<circle cx="{x(e):.1f}" cy="15" r="3" fill="#9aa1ad" fill-opacity="0.7"/>')
    if ctl.get("threshold") is not None:
        t = x(ctl["threshold"])
        parts.append(f'<line x1="{t:.1f}" y1="4" x2="{t:.1f}" y2="26" stroke="#a15c00" stroke-width="1.5"/>')
    m = x(mean)
    color = "#1f7a4d" if k.get("strong_causal") else "#1d2330"
    parts.append(f'<path d="M{m:.1f},8 L{m + 6:.1f},15 L{m:.1f},22 L{m - 6:.1f},15 Z" fill="{color}"/>')
    parts.append(f'<text x="{pad}" y="33">{_e(num(lo))}</text>'
                 f'<text x="{width - pad}" y="33" text-anchor="end">{_e(num(hi))}</text></svg>')
    return "".join(parts)


def _tokens(ex: dict[str, Any]) -> str:
    tokens = context_tokens(ex)
    if not tokens:
        text = _e(ex.get("text"))
        tok = f' <span class="tok focus mono">{_e(ex["token"])}</span>' if ex.get("token") else ""
        return f"{text}{tok}"
    peak = max((abs(t.get("activation") or 0.0) for t in tokens), default=0.0) or 1.0
    spans = []
    for t in tokens:
        a = t.get("activation") or 0.0
        alpha = min(abs(a) / peak, 1.0) * 0.85
        rgb = "31,122,77" if a >= 0 else "180,55,43"
        cls = "tok focus" if t.get("focus") else "tok"
        spans.append(f'<span class="{cls}" style="background:rgba({rgb},{alpha:.2f})" '
                     f'title="{_e(num(a))}">{_e(t.get("token"))}</span>')
    return "…" + "".join(spans) + "…"


def _association(card: dict[str, Any]) -> str:
    assoc = card.get("association")
    if not assoc:
        return ""
    stat = statistic(card)
    d, h = discovery(card), heldout(card)
    key = "auroc" if stat == "auroc" else "spearman"
    effect_name = "Somers' D = 2·AUROC−1" if stat == "auroc" else "Spearman ρ"
    smd = h.get("smd")
    smd_scale = max(2.0, abs(smd or 0) * 1.2, *(abs(v) * 1.1 for v in (h.get("smd_ci") or []) if v is not None))
    rows = [
        ("effect (" + effect_name + ")", with_ci(h.get("effect"), h.get("effect_ci")),
         _ci_bar(h.get("effect"), h.get("effect_ci")), signed(d.get("effect"))),
        (stat.upper() if stat == "auroc" else "Spearman ρ", f"{num(h.get(key))} {ci(h.get(key + '_ci'))}", "",
         num(d.get(key))),
        ("standardized mean difference", with_ci(smd, h.get("smd_ci")),
         _ci_bar(smd, h.get("smd_ci"), -smd_scale, smd_scale) if smd is not None else "", num(d.get("smd"))),
        ("correlation r", with_ci(h.get("r"), h.get("r_ci")), _ci_bar(h.get("r"), h.get("r_ci")), num(d.get("r"))),
        ("p / q", f"{pval(h.get('p'))} / {pval(h.get('q'))}", "", f"{pval(d.get('p'))} / {pval(d.get('q'))}"),
    ]
    body = "".join(f"<tr><td>{_e(a)}</td><td class='num'>{_e(b)}</td><td>{c}</td><td class='num'>{_e(dd)}</td></tr>"
                   for a, b, c, dd in rows)
    out = (f"<h4>Association</h4><table><tr><th></th><th>held-out (reported; {_e(h.get('rows'))} rows)</th>"
           f"<th>95% CI</th><th>discovery (selection; rank {_e(d.get('rank'))})</th></tr>{body}</table>")
    adj = assoc.get("adjusted")
    if adj:
        out += (f"<p>Adjusted for <b>{_e(', '.join(adj.get('covariates') or []))}</b>: partial r "
                f"{_e(num(adj.get('partial_r')))} {_e(ci(adj.get('partial_r_ci')))} (raw {_e(num(adj.get('raw_r')))},"
                f" retention {_e(num(adj.get('retention')))}) {_ci_bar(adj.get('partial_r'), adj.get('partial_r_ci'))}"
                + (" <span class='badge flag'>confounded</span>" if adj.get("confounded") else "") + "</p>")
    return out


def _causal(card: dict[str, Any]) -> str:
    kinds = card.get("causal") or {}
    out = ""
    if kinds:
        rows = []
        for key, k in kinds.items():
            ctl, plc = k.get("controls") or {}, k.get("placebo") or {}
            verdict = ("<span class='strong'>strong_causal</span>" if k.get("strong_causal") else
                       "<span class='weak'>not strong: " + _e("; ".join(k.get("reasons") or [])) + "</span>")
            rows.append(
                f"<tr><td><code>{_e(key)}</code><br><span class='muted'>{_e(k.get('split'))}</span></td>"
                f"<td class='num'>{_e(with_ci(k.get('mean_effect'), k.get('ci')))}<br>"
                f"{_ci_bar(k.get('mean_effect'), k.get('ci'), *_span(k))}</td>"
                f"<td class='num'>{_e(k.get('n'))}{' (all)' if k.get('n_is_all_available') else ''}</td>"
                f"<td>{_e(ctl.get('n', 0))} {_e(', '.join(ctl.get('types') or []))}<br>"
                f"<span class='muted'>threshold {_e(signed(ctl.get('threshold')))} ({_e(ctl.get('threshold_is', ''))})"
                f"</span><br>{_controls_strip(k)}</td>"
                f"<td class='num'>{_e(with_ci(plc.get('mean'), plc.get('ci'))) if plc else '-'}</td>"
                f"<td>{verdict}</td></tr>")
        out += ("<h4>Causal evidence <span class='muted'>(signed: positive = promotes the criterion)</span></h4>"
                "<table><tr><th>kind</th><th>mean effect [95% CI]</th><th>n</th><th>random controls "
                "(dots), threshold (line), this feature (diamond)</th><th>placebo</th><th>verdict</th></tr>"
                + "".join(rows) + "</table>")
    if card.get("reported_causal_effect") is not None:
        out += f"<p>Reported causal effect (feature dump, no interval): {_e(signed(card['reported_causal_effect']))}</p>"
    side = card.get("side_effects")
    if side:
        out += (f"<p>Side effects: {_e(num(side.get('mean')))} {_e(ci(side.get('ci')))} over {_e(side.get('n'))} "
                f"prompts <span class='muted'>({_e(side.get('measure'))})</span></p>")
    return out


def _span(k: dict[str, Any]) -> tuple[float, float]:
    vals = [v for v in [k.get("mean_effect"), *(k.get("ci") or [])] if v is not None]
    m = max([abs(v) for v in vals] + [1e-9]) * 1.3
    return -m, m


def _examples(card: dict[str, Any]) -> str:
    exs = card.get("examples") or []
    if not exs:
        return ""
    items = []
    for ex in exs:
        meta = " · ".join(x for x in (
            f"act {num(ex['activation'])}" if ex.get("activation") is not None else "",
            f"score {num(ex['criterion_score'])}" if ex.get("criterion_score") is not None else "",
            ex.get("split") or "", ex.get("prompt_id") or "") if x)
        items.append(f"<div class='ex'>{_tokens(ex)} <span class='muted mono'>{_e(meta)}</span></div>")
    return "<h4>Top activating contexts</h4>" + "".join(items)


def _fingerprint(card: dict[str, Any]) -> str:
    fp = card.get("fingerprint") or {}
    if not fp:
        return ""
    parts = []
    act = fp.get("activation")
    if isinstance(act, dict):
        first = list(act.items())[:6]
        parts.append(f"activation signature over {len(act)} probes: "
                     + ", ".join(f"{_e(k)}={_e(num(v))}" for k, v in first) + (" …" if len(act) > 6 else ""))
    elif isinstance(act, list):
        parts.append(f"positional activation signature of {len(act)} values")
    for key in sorted(k for k in fp if k != "activation"):
        val = fp[key]
        size = f"{len(val)} entries" if isinstance(val, (list, dict)) else _e(val)
        parts.append(f"{_e(key)}: {size}")
    return "<details><summary>fingerprint</summary><p class='mono'>" + "<br>".join(parts) + "</p></details>"


def _card(card: dict[str, Any]) -> str:
    tier = card.get("evidence_tier") or "discovery_only"
    badges = _badge(tier, f"t-{tier}")
    if card.get("direction"):
        badges += _badge(card["direction"], f"d-{card['direction']}")
    badges += "".join(_badge(f, "flag") for f in card.get("flags") or [])
    comps = card.get("importance_components") or {}
    comp_text = ", ".join(f"{k} {num(v)}" for k, v in comps.items())
    spec, stab = card.get("specificity") or {}, card.get("stability") or {}
    half = stab.get("split_half") or {}
    grid = []
    if spec:
        grid.append(f"<div class='kv'><b>specificity {_e(num(spec.get('score')))}</b><br><span class='muted'>fires on "
                    f"{_e(num(spec.get('firing_rate_pos')))} of positives vs {_e(num(spec.get('firing_rate_neg')))} "
                    f"of negatives; mean |act| {_e(num(spec.get('mean_abs_pos')))} vs "
                    f"{_e(num(spec.get('mean_abs_neg')))}</span></div>")
    if stab:
        grid.append(f"<div class='kv'><b>stability {_e(num(stab.get('score')))}</b><br><span class='muted'>"
                    f"{_e(stab.get('method'))}; split-half signs {'agree' if half.get('sign_agrees') else 'disagree'}"
                    f"</span></div>")
    prov = card.get("provenance") or {}
    bits = [prov.get("source")]
    if prov.get("evidence") and prov.get("evidence") != prov.get("source"):
        bits.append(prov["evidence"])
    if prov.get("planted_role"):
        bits.append(f"planted {prov['planted_role']}")
    bits += [f"hook {h}" for h in prov.get("hooks") or []]
    grid.append(f"<div class='kv'><b>provenance</b><br><span class='muted'>"
                f"{_e(' · '.join(str(b) for b in bits if b))}</span></div>")
    label = f" — {_e(card.get('label'))}" if card.get("label") else ""
    return (f"<section class='card' id='{_e(card['feature_id'])}'><header><h3>{_e(card.get('rank'))}. "
            f"<code>{_e(card['feature_id'])}</code>{label}</h3>{badges}<span class='muted'>importance "
            f"<b>{_e(num(card.get('importance')))}</b> ({_e(comp_text)})</span></header>"
            f"<div class='grid'>{''.join(grid)}</div>{_association(card)}{_causal(card)}{_examples(card)}"
            f"{_fingerprint(card)}</section>")


def _summary_table(cards: list[dict[str, Any]]) -> str:
    rows = []
    for c in cards:
        h = heldout(c)
        tier = c.get("evidence_tier") or "discovery_only"
        rows.append(f"<tr><td>{_e(c.get('rank'))}</td><td><a href='#{_e(c['feature_id'])}'><code>"
                    f"{_e(c['feature_id'])}</code></a></td><td>{_e(c.get('label'))}</td>"
                    f"<td>{_badge(tier, 't-' + tier)}</td><td>{_e(c.get('direction') or '-')}</td>"
                    f"<td class='num'>{_e(num(c.get('importance')))}</td>"
                    f"<td class='num'>{_e(with_ci(h.get('effect'), h.get('effect_ci')))}</td>"
                    f"<td>{_ci_bar(h.get('effect'), h.get('effect_ci'), width=150)}</td>"
                    f"<td>{_e(causal_verdict(c))}</td></tr>")
    return ("<table><tr><th>#</th><th>feature</th><th>label</th><th>tier</th><th>direction</th><th>importance</th>"
            "<th>held-out effect [95% CI]</th><th></th><th>causal</th></tr>" + "".join(rows) + "</table>")


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (deterministic: same dict, same bytes)."""
    cards = report.get("cards") or []
    summary = report.get("summary") or {}
    tiers = summary.get("tiers") or {}
    head = (f"<h1>{_e(report.get('criterion'))}</h1><div class='muted'>model <code>{_e(report.get('model') or '-')}"
            f"</code> · backend <code>{_e(report.get('backend'))}</code> · "
            + " · ".join(f"{_e(k)} {_e(v)}" for k, v in tiers.items()) + "</div>")
    parts = [head]
    if report.get("synthetic"):
        parts.append("<div class='banner'>SYNTHETIC EVIDENCE — planted ground truth, measures no model.</div>")
    msgs = [("warning", w) for w in report.get("warnings") or []] + [("note", n) for n in report.get("notes") or []]
    if msgs:
        parts.append("<div class='box'><ul>" + "".join(f"<li><b>{k}</b>: {_e(v)}</li>" for k, v in msgs)
                     + "</ul></div>")
    inputs = report.get("inputs") or []
    if inputs:
        parts.append("<h2>Inputs</h2><table><tr><th>role</th><th>name</th><th>sha256</th><th>rows</th></tr>"
                     + "".join(f"<tr><td>{_e(i.get('role'))}</td><td>{_e(i.get('name'))}</td><td class='mono'>"
                               f"{_e((i.get('sha256') or '-')[:16])}</td><td class='num'>{_e(num(i.get('rows')))}</td>"
                               "</tr>" for i in inputs) + "</table>")
    split = (report.get("splits") or {}).get("association")
    if split:
        counts = split.get("counts") or {}
        parts.append(f"<p class='muted'>{_e(split.get('rule'))} (splits {_e(split.get('source'))}: "
                     + ", ".join(f"{_e(k)} {_e(num(v.get('rows')))} rows / {_e(num(v.get('prompts')))} prompts"
                                 for k, v in counts.items()) + ")</p>")
    parts.append(f"<h2>Features ({len(cards)})</h2>" + _summary_table(cards))
    parts.extend(_card(c) for c in cards)
    settings = report.get("settings") or {}
    if settings:
        imp = settings.get("importance") or {}
        items = [f"<li><b>importance</b>: {_e(imp.get('formula'))}; weights "
                 + _e(", ".join(f"{k} {v}" for k, v in (imp.get("weights") or {}).items())) + "</li>"]
        for key in ("tiers", "ordering"):
            if imp.get(key):
                items.append(f"<li><b>{key}</b>: {_e(imp[key])}</li>")
        for key in ("selection", "causal_rule"):
            if settings.get(key):
                items.append(f"<li><b>{_e(key.replace('_', ' '))}</b>: {_e(settings[key])}</li>")
        for key, text in (settings.get("association") or {}).items():
            items.append(f"<li><b>association ({_e(key)})</b>: {_e(text)}</li>")
        ranking = settings.get("ranking") or {}
        items.append("<li><b>ranking settings</b>: " + _e(", ".join(f"{k} {v}" for k, v in ranking.items())) + "</li>")
        parts.append("<h2>How this report was computed</h2><details open><summary>settings</summary><ul>"
                     + "".join(items) + "</ul></details>")
    created = report.get("created_with") or {}
    parts.append(f"<p class='muted'>{_e(report.get('schema_version'))} · {_e(created.get('package'))} "
                 f"{_e(created.get('version'))}</p>")
    title = _e(f"{report.get('criterion')} — interp-lab report")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><title>{title}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")
