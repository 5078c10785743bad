"""report.html: one self-contained page (inline CSS and SVG; no script, no external resource).

Every string from the evidence (labels, texts, tokens, ids, settings) goes through ``_e``.
Same dict, same bytes: no clock, no random ids (anchors derive from feature ids).
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from interp_lab.report import _card_text as ct
from interp_lab.report import _format as f
from interp_lab.report import _theme as theme

N = "\x01"  # marks a numeric table cell; _e drops control characters, so escaped text never starts with it


def _e(x: Any) -> str:
    return escape(f.printable(x), quote=True)


def _pill(label: Any, cls: str, title: Any = None) -> str:
    tip = f' title="{_e(title)}"' if title else ""
    return f'<span class="pill {cls}"{tip}>{_e(label)}</span>'


def _tier(tier: Any) -> str:
    t = f.text(tier) or "discovery_only"
    return _pill(ct.TIER_TEXT.get(t, t), "t-" + t if t in ct.TIERS else "t-other")


def _direction(card: dict[str, Any]) -> str:
    d = card.get("direction")
    return _pill(d, "d-" + re.sub(r"\W", "", f.text(d))) if d else ""


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are HTML already; a cell starting with N is numeric (tabular figures)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c[1:]}</td>' if c.startswith(N) else f"<td>{c}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll {cls}"><table><tr>{head}</tr>{body}</table></div>'


def _tokens(ex: dict[str, Any]) -> str:
    tokens = ct.context(ex)
    if not tokens:
        text = f.clip(f.text(ex.get("text")).strip())
        tok = f.text(ex.get("token")).strip()
        if tok and text.count(tok) == 1:
            a, b = text.split(tok)
            return f'<div class="ctx">{_e(a)}<span class="tok focus">{_e(tok)}</span>{_e(b)}</div>'
        chip = f' <span class="tok focus mono">{_e(ex["token"])}</span>' if tok else ""
        return f'<div class="ctx">{_e(text) or "<span class=muted>(no text)</span>"}{chip}</div>'
    acts = [f.fnum(t.get("activation")) or 0.0 for t in tokens]
    peak = max((abs(a) for a in acts), default=0.0) or 1.0
    spans = []
    for t, a in zip(tokens, acts):
        lead, core, trail = f.split_space(t.get("token"))
        alpha = 0.0 if a == 0 else 0.1 + 0.6 * min(abs(a) / peak, 1.0)
        rgb = "37,99,235" if a >= 0 else "234,88,12"
        ink = ";color:#fff" if alpha > 0.5 else ""
        cls = "tok focus" if t.get("focus") else "tok"
        spans.append(f'{_e(lead)}<span class="{cls}" style="background:rgba({rgb},{alpha:.2f}){ink}" '
                     f'title="activation {_e(f.num(a))}">{_e(core)}</span>{_e(trail)}')
    return '<div class="ctx"><span class="ell">…</span>' + "".join(spans) + '<span class="ell">…</span></div>'


def _examples(card: dict[str, Any]) -> str:
    exs = [e for e in f.lst(card.get("examples")) if isinstance(e, dict)]
    if not exs:
        return ""
    peak = max((abs(f.fnum(e.get("activation")) or 0.0) for e in exs), default=0.0) or 1.0
    items = []
    for ex in exs:
        a = f.fnum(ex.get("activation"))
        act = (f'<div class="mono">{_e(f.num(a))}</div><div class="actbar"><span style="width:'
               f'{100 * min(abs(a) / peak, 1):.0f}%"></span></div>') if a is not None else ""
        meta = [m for m in ct.example_meta(ex) if not m.startswith("act ")]
        items.append(f'<div class="ex"><div>{act}</div>{_tokens(ex)}<div class="exmeta">{_e(" · ".join(meta))}</div>'
                     "</div>")
    legend = ("" if not any(ct.context(e) for e in exs) else ' <span class="muted small">(token shade = '
              "activation relative to the context's peak: blue positive, orange negative; outlined = the "
              "example's token)</span>")
    return f"<h4>Top activating examples</h4>{legend}" + "".join(items)


def _corpus_contexts(card: dict[str, Any]) -> str:
    cc = f.d(card.get("corpus_contexts"))
    ctx = [c for c in f.lst(cc.get("contexts")) if isinstance(c, dict)]
    if not ctx:
        return ""
    head = (f"<h4>Top activating contexts over {_e(cc.get('dataset'))}</h4><div class='muted small'>"
            f"{_e(f.num(cc.get('tokens_scanned')))} tokens scanned at <code>{_e(cc.get('hook'))}</code> in "
            f"{_e(cc.get('compute_dtype') or 'float32')}; left out: "
            f"{_e(cc.get('excluded'))}")
    if cc.get("next_token_in_targets") is not None:
        head += f"; next token in the criterion's targets: {_e(cc['next_token_in_targets'])} of {len(ctx)}"
    rows = [[N + _e(f.num(c.get("value"))),
             f'<span class="ctx">{_e(f.text(c.get("left")))}<span class="tok focus">{_e(f.text(c.get("token")))}'
             f'</span>{_e(f.text(c.get("right")))}</span>', f'<code>{_e(repr(c.get("next_token")))}</code>',
             _e(c.get("doc"))] for c in ctx]
    return head + "</div>" + _table(["value", "context", "next token", "document"], rows)


def _association(card: dict[str, Any]) -> str:
    if not f.d(card.get("association")):
        return ""
    stat, dsc, h = ct.statistic(card), ct.discovery(card), ct.heldout(card)
    name, rs, rs_ci = ct.rank_stat(card)
    smd = theme.sym_scale(h.get("smd"), *(f.pair(h.get("smd_ci")) or ()), 1.0)
    rows = [
        [f"<b>{_e(ct.effect_name(stat))}</b>" + (' <span class="muted small">= 2·AUROC − 1</span>' if stat == "auroc"
                                                 else ""), N + _e(f.with_ci(h.get("effect"), h.get("effect_ci"))),
         theme.ci_bar(h.get("effect"), h.get("effect_ci")), N + _e(f.signed(dsc.get("effect")))],
        [_e(name), N + _e(f"{f.num(rs)} {f.ci(rs_ci)}"),
         theme.ci_bar(rs, rs_ci, 0.0, 1.0, ref=0.5) if stat == "auroc" else theme.ci_bar(rs, rs_ci),
         N + _e(f.num(ct.rank_stat(card, dsc)[1]))] if name != ct.effect_name(stat) else None,
        ["standardized mean difference", N + _e(f.with_ci(h.get("smd"), h.get("smd_ci"))),
         theme.ci_bar(h.get("smd"), h.get("smd_ci"), -smd, smd), N + _e(f.signed(dsc.get("smd")))],
        ["correlation r", N + _e(f.with_ci(h.get("r"), h.get("r_ci"))), theme.ci_bar(h.get("r"), h.get("r_ci")),
         N + _e(f.signed(dsc.get("r")))],
    ]
    adj = ct.adjusted(card)
    if adj:
        cov = ", ".join(map(str, f.lst(adj.get("covariates")))) or "covariates"
        rows.append([f"partial r, adjusted for <b>{_e(cov)}</b>"
                     + (" " + _pill("confounded", "flag") if adj.get("confounded") else "")
                     + f'<div class="muted small">raw r {_e(f.signed(adj.get("raw_r")))} · retention '
                     f'{_e(f.num(adj.get("retention")))}</div>',
                     N + _e(f.with_ci(adj.get("partial_r"), adj.get("partial_r_ci"))),
                     theme.ci_bar(adj.get("partial_r"), adj.get("partial_r_ci")), N + f.MISSING])
    rows.append(["p / q", N + _e(f"{f.pval(h.get('p'))} / {f.pval(h.get('q'))}"), "",
                 N + _e(f"{f.pval(dsc.get('p'))} / {f.pval(dsc.get('q'))}")])
    rows.append(["rows (positives)" if stat == "auroc" else "rows (Σ score)", N + _e(f"{f.num(h.get('rows'))} ({f.num(h.get('positives'))})"), "",
                 N + _e(f"{f.num(dsc.get('rows'))} ({f.num(dsc.get('positives'))})")])
    return ("<h4>Association</h4>" + _table(
        ["measure", "held-out (reported) [95% CI]", "", f"discovery (selection; rank {_e(dsc.get('rank', '-'))})"],
        [r for r in rows if r is not None])
        + (f'<p class="muted small">Top activations: {_e(ct.top_activations_text(card))}</p>'
           if ct.top_activations_text(card) else ""))


def _causal(card: dict[str, Any]) -> str:
    rows = []
    for key, k in ct.causal_kinds(card):
        ctl, plc, side = f.d(k.get("controls")), f.d(k.get("placebo")), f.d(k.get("side_effect"))
        verdict = ('<span class="yes">strong_causal ✓</span>' if k.get("strong_causal") else
                   '<span class="no">not strong</span><div class="muted small">'
                   + _e("; ".join(map(str, f.lst(k.get("reasons"))))) + "</div>")
        ctl_text = (f"{_e(f.num(ctl.get('n', 0)))} {_e(', '.join(map(str, f.lst(ctl.get('types')))))}"
                    f'<div class="muted small">mean {_e(f.signed(ctl.get("mean")))} · 95th percentile '
                    f'{_e(f.signed(ctl.get("threshold")))} · exceeds {_e(f.pct(ctl.get("fraction_exceeded")))}</div>')
        test = ""
        if k.get("p_value") is not None:
            test = (f"<div class='muted small'>p {_e(ct.causal_test(k))} · q {_e(f.pval(k.get('q_value')))} · paired "
                    f"bound {_e(f.signed(k.get('paired_lower_bound')))}</div>")
        facts = ct.causal_details(k)
        rows.append([f"<code>{_e(key)}</code><div class='muted small'>{_e(k.get('split'))}</div>",
                     N + _e(f.with_ci(k.get("mean_effect"), k.get("ci")))
                     + f"<div class='muted small'>n {_e(f.num(k.get('n')))}"
                     + (" (all available)" if k.get("n_is_all_available") else "")
                     + (f" · {_e(ct.of_baseline(k))}" if k.get("baseline_mean") is not None else "")
                     + "</div>" + test,
                     ctl_text + theme.controls_strip(k)
                     + ("<ul class='muted small'>" + "".join(f"<li>{_e(x)}</li>" for x in facts) + "</ul>"
                        if facts else ""),
                     N + (_e(f.with_ci(plc.get("mean"), plc.get("ci"))) + f"<div class='muted small'>n "
                            f"{_e(f.num(plc.get('n')))}</div>" if plc else f.MISSING),
                     N + (_e(f.with_ci(side.get("mean"), side.get("ci"))) + f"<div class='muted small'>n "
                            f"{_e(f.num(side.get('n')))}</div>" if side else f.MISSING), verdict])
    out = ""
    if rows:
        out += ('<h4>Causal evidence</h4><div class="muted small">signed: positive = promotes the criterion. Plot: '
                'controls (grey dots; label-permuted refits in blue), their 95th percentile in the tested direction '
                '(dashed), this feature with its 95% CI (diamond)</div>'
                + _table(["kind", "mean effect [95% CI]", "controls", "placebo", "side effect (KL)", "verdict"],
                         rows))
    if f.fnum(card.get("reported_causal_effect")) is not None:
        out += (f"<h4>Reported causal effect</h4><p>{_e(f.signed(card['reported_causal_effect']))} "
                "<span class='muted'>(from the feature dump: no interval, no controls)</span></p>")
    if ct.text_match(card):
        out += f"<h4>Imported</h4><p>{_e(ct.text_match(card))}</p>"
    side = f.d(card.get("side_effects"))
    if side:
        out += (f"<p><b>Side effects</b>: {_e(f.num(side.get('mean')))} {_e(f.ci(side.get('ci')))} over "
                f"{_e(f.num(side.get('n')))} prompts <span class='muted'>({_e(side.get('measure'))})</span></p>")
    return out


def _spec_stab(card: dict[str, Any]) -> str:
    spec, stab, half = ct.spec_stab(card)
    kv = [("Specificity", spec.get("score"), _e(ct.specificity_text(spec)))] if spec else []
    if stab:
        agree = ("" if not half else f"; split-half signs {'agree' if half.get('sign_agrees') else '<b>disagree</b>'}"
                 f" ({_e(f.signed(half.get('discovery_effect')))} → {_e(f.signed(half.get('heldout_effect')))})")
        kv.append(("Stability", stab.get("score"), f"{_e(stab.get('method'))}{agree}"))
    boxes = "".join(f"<div class='kv'><b>{name} {_e(f.num(score))}</b><div class='small muted'>{text}</div></div>"
                    for name, score, text in kv)
    return f"<div class='kv3'>{boxes}</div>" if boxes else ""


def _fingerprint(card: dict[str, Any]) -> str:
    fp = f.d(card.get("fingerprint"))
    parts = []
    for key, val in fp.items():
        desc, top = f.summarize(val, 8)
        values = [v for v in (f.fnum(x) for x in (val.values() if isinstance(val, dict) else f.lst(val)))
                  if v is not None]
        items = "".join(f"<span><code>{_e(k)}</code> {_e(f.num(v))}</span>" for k, v in top)
        more = f"<span class='muted'>largest {len(top)} shown</span>" if top and len(top) < len(values) else ""
        parts.append(f"<div><b>{_e(key)}</b> <span class='muted'>{_e(desc)}</span>{theme.sparkline(values[:512])}"
                     + (f"<div class='fp'>{items}{more}</div>" if items else "") + "</div>")
    if not parts:
        return ""
    return f"<details><summary>Fingerprint ({_e(', '.join(fp))})</summary>{''.join(parts)}</details>"


def _importance(report: dict[str, Any], card: dict[str, Any]) -> str:
    weights = f.d(f.d(f.d(report.get("settings")).get("importance")).get("weights"))
    rows = []
    for name, v in ct.components(card):
        x = f.fnum(v)
        w = f" · w {f.short(weights[name])}" if name in weights else ""
        fill = f'<div class="fill" style="width:{100 * min(max(x, 0), 1):.0f}%"></div>' if x is not None else ""
        rows.append(f'<div class="comp"><span title="{_e(name + w)}">{_e(name)}</span><div class="track">{fill}</div>'
                    f'<span class="mono">{_e(f.num(x) if x is not None else "n/a")}</span></div>')
    return (f'<div class="imp"><div class="imp-top"><span class="muted small">importance</span><span class="imp-val">'
            f'{_e(f.num(card.get("importance")))}</span></div>{"".join(rows)}</div>')


def _card(report: dict[str, Any], card: dict[str, Any], i: int, anchor: str) -> str:
    badges = _tier(card.get("evidence_tier")) + _direction(card)
    flags = [str(x) for x in f.lst(card.get("flags"))]
    badges += "".join(_pill(x, "flag", ct.FLAG_TEXT.get(x)) for x in flags)
    role = ct.planted_role(report, card)
    if role:
        badges += _pill(f"planted: {role}", "planted")
    label = (f' <span class="label">— {_e(card["label"])}</span>' if card.get("label")
             else ' <span class="muted small">unlabelled</span>')
    prov = " · ".join(ct.provenance_bits(card))
    flag_box = ("<div class='flags'><ul>" + "".join(f"<li><b>{_e(x)}</b>: {_e(ct.FLAG_TEXT.get(x, 'flagged'))}</li>"
                                                    for x in flags) + "</ul></div>") if flags else ""
    return (f'<section class="card" id="{anchor}"><div class="card-head"><div class="rank">'
            f'{_e(card.get("rank", i + 1))}</div><div><h3><code>{_e(ct.feature_id(card, i))}</code>{label}</h3><div>{badges}</div>'
            f'<div class="muted small">{_e(prov)}</div></div>{_importance(report, card)}</div>{flag_box}'
            f"{_spec_stab(card)}{_association(card)}{_causal(card)}{_examples(card)}{_corpus_contexts(card)}"
            f"{_fingerprint(card)}</section>")


def _verdicts(card: dict[str, Any]) -> str:
    """The summary table's causal cell: one line per intervention kind."""
    lines = [f"<div class='nw'><span class='{'yes' if k.get('strong_causal') else 'no'}'>"
             f"{'✓' if k.get('strong_causal') else '✗'}</span> {_e(key)} {_e(f.signed(k.get('mean_effect')))}</div>"
             for key, k in ct.causal_kinds(card)]
    if f.fnum(card.get("reported_causal_effect")) is not None:
        lines.append(f"<div class='muted'>reported {_e(f.signed(card['reported_causal_effect']))}</div>")
    return "".join(lines) or f.MISSING


def _summary(cards: list[dict[str, Any]], anchors: list[str]) -> str:
    rows = []
    for i, (c, a) in enumerate(zip(cards, anchors)):
        h = ct.heldout(c)
        name, rs, _ = ct.rank_stat(c)
        label = f"<div class='small'>{_e(c['label'])}</div>" if c.get("label") else ""
        flags = "".join(_pill(x, "flag", ct.FLAG_TEXT.get(str(x))) for x in f.lst(c.get("flags")))
        rows.append([N + _e(c.get("rank", i + 1)),
                     f'<a href="#{a}"><code>{_e(ct.feature_id(c, i))}</code></a>{label}'
                     + (f"<div>{flags}</div>" if flags else ""),
                     _tier(c.get("evidence_tier")), _direction(c) or f.MISSING, N + _e(f.num(c.get("importance"))),
                     N + _e(f.with_ci(h.get("effect"), h.get("effect_ci"))),
                     theme.ci_bar(h.get("effect"), h.get("effect_ci"), width=150),
                     N + (_e(f.num(rs)) if f.fnum(rs) is not None else f.MISSING), _verdicts(c)])
    return _table(["#", "feature", "tier", "direction", "importance", "held-out effect [95% CI]", "", "AUROC / ρ",
                   "causal (✓ strong)"], rows, "summary")


def _overview(report: dict[str, Any]) -> str:
    panels = []
    inputs = [f.d(i) for i in f.lst(report.get("inputs"))]
    if inputs:
        rows = [[_e(i.get("role")), f"<code>{_e(i.get('name'))}</code>"
                 + (f"<div class='muted small'>{_e(f.params(i.get('params')))}</div>" if i.get("params") else ""),
                 f'<code title="{_e(i.get("sha256"))}">{_e(f.short_hash(i.get("sha256")))}</code>',
                 N + _e(f.num(i.get("rows")))] for i in inputs]
        panels.append("<div class='panel'><h2>Inputs</h2>" + _table(["role", "name", "sha256", "rows"], rows)
                      + "</div>")
    splits = f.d(report.get("splits"))
    assoc, inter = f.d(splits.get("association")), f.d(f.d(splits.get("interventions")).get("rows"))
    if assoc or inter:
        scheme = f.d(assoc.get("scheme"))
        rows = [[_e(k), N + _e(f.pct(scheme.get(k))), N + _e(f.num(f.d(v).get("rows"))),
                 N + _e(f.num(f.d(v).get("prompts"))), N + _e(f.num(inter.get(k)) if inter else f.MISSING)]
                for k, v in f.d(assoc.get("counts")).items()]
        panels.append("<div class='panel'><h2>Splits</h2>" + _table(
            ["split", "share", "scored rows", "prompts", "intervention rows"], rows)
            + f"<p class='muted small'>{_e(assoc.get('rule'))} (split by {_e(assoc.get('source') or '-')})</p></div>")
    out = f"<div class='grid2'>{''.join(panels)}</div>" if panels else ""
    planted = f.d(report.get("planted"))
    if planted:
        by_id = {f.text(c.get("feature_id")): c for c in ct.cards(report)}
        order = sorted(planted, key=lambda k: (f.fnum(by_id.get(k, {}).get("rank")) or float("inf"), str(k)))
        rows = [[f"<code>{_e(k)}</code>", _pill(planted[k], "planted"),
                 N + _e(by_id[k].get("rank")) if k in by_id else "not reported",
                 _tier(by_id[k].get("evidence_tier")) if k in by_id else "",
                 "".join(_pill(x, "flag") for x in f.lst(by_id.get(k, {}).get("flags")))] for k in order]
        out += ("<div class='panel'><h2>Planted ground truth</h2><p class='muted small'>The generator planted these "
                "features with known roles: compare each role with the card's rank, tier and flags.</p>"
                + _table(["feature", "planted role", "card rank", "tier", "flags"], rows) + "</div>")
    return out


def _settings(report: dict[str, Any]) -> str:
    s = f.d(report.get("settings"))
    if not s:
        return ""
    imp, items = f.d(s.get("importance")), []
    weights, comps = f.d(imp.get("weights")), f.d(imp.get("components"))
    names = list(dict.fromkeys(list(weights) + list(comps)))
    if imp.get("formula"):
        items.append(f"<p><b>Importance</b>: {_e(imp['formula'])}.</p>")
    if names:
        items.append(_table(["component", "weight", "meaning"], [[f"<b>{_e(n)}</b>", N + _e(f.short(weights.get(n))),
                                                                 _e(comps.get(n))] for n in names]))
    for key, title in (("ordering", "Ordering"), ("tiers", "Tiers")):
        if imp.get(key):
            items.append(f"<p><b>{title}</b>: {_e(imp[key])}.</p>")
    if s.get("selection"):
        items.append(f"<p><b>Selection rule</b>: {_e(s['selection'])}.</p>")
    rule, measured = ct.causal_rule(s)
    if rule:
        items.append(f"<p><b>Causal rule</b>: {_e(rule)}</p>"
                     + (f"<p><b>Measured</b>: {_e(measured)}.</p>" if measured else ""))
    assoc = f.d(s.get("association"))
    if assoc:
        items.append("<p><b>Association statistics</b></p><ul>" + "".join(
            f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in assoc.items()) + "</ul>")
    for key in ("ranking", "causal"):
        if f.d(s.get(key)):
            items.append(f"<p><b>{key.capitalize()} parameters</b>: <span class='mono'>{_e(f.params(s[key], 40))}"
                         "</span></p>")
    prov = f.d(report.get("provenance"))
    if prov:
        items.append("<p><b>Provenance</b>: " + "; ".join(
            f"{_e(k)} {_e(f.listing(k, v)) or f.MISSING}"
            for k, v in prov.items()) + "</p>")
    return ("<details class='panel'><summary><b>How this report was computed</b> — importance, selection, causal "
            "rule, statistics, parameters</summary>" + "".join(items) + "</details>")


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (deterministic: same dict, same string)."""
    report = f.d(report)
    cards, summary = ct.cards(report), f.d(report.get("summary"))
    anchors = ct.anchors(cards)
    created = f.d(report.get("created_with"))
    facts = [f"model <code>{_e(report.get('model') or f.MISSING)}</code>",
             f"backend <code>{_e(report.get('backend') or f.MISSING)}</code>"]
    if summary.get("statistic"):
        facts.append(f"statistic {_e(summary['statistic'])}"
                     + (f" ({_e(summary['criterion_type'])})" if summary.get("criterion_type") else ""))
    facts += [f"{_e(f.num(summary[key]))} {name}" for key, name in ct.SUMMARY_FACTS if summary.get(key) is not None]
    tiers = "".join(_pill(f"{ct.TIER_TEXT.get(k, k)} {v}", "t-" + k if k in ct.TIERS else "t-other")
                    for k, v in ct.tier_counts(report).items())
    parts = [f"<header><div class='eyebrow'>Feature report · {_e(created.get('package') or 'interp-lab')} "
             f"{_e(created.get('version'))}</div><h1>{_e(report.get('criterion') or 'untitled criterion')}</h1>"
             f"<div class='meta'>{' · '.join(facts)}</div><div>{tiers}</div></header>"]
    if report.get("synthetic"):
        parts.append(f"<div class='banner' role='alert'><strong>⚠ {ct.SYNTHETIC_BANNER}</strong>These numbers come "
                     "from a generator with known answers: they check the method, not any model.</div>")
    for key, cls in (("warnings", "warn"), ("notes", "note")):
        msgs = f.lst(report.get(key))
        if msgs:
            parts.append(f"<div class='box {cls}'><b>{key.capitalize()}</b><ul>"
                         + "".join(f"<li>{_e(m)}</li>" for m in msgs) + "</ul></div>")
    parts.append(_overview(report))
    parts.append(f"<div class='panel'><h2>Features ({len(cards)})</h2>{_summary(cards, anchors)}</div>")
    parts += [_card(report, c, i, a) for i, (c, a) in enumerate(zip(cards, anchors))]
    parts.append(_settings(report))
    parts.append(f"<footer>{_e(report.get('schema_version'))} · {_e(created.get('package'))} "
                 f"{_e(created.get('version'))}</footer>")
    title = _e(f"{report.get('criterion') or 'report'} — feature report")
    return theme.page(title, "".join(parts))
