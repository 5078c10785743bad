"""report.md: the report for a terminal, an editor or a pull request.

Untrusted strings (labels, example texts, tokens, ids) go through ``report.mdtext`` so that they cannot
inject Markdown or raw HTML. Same dict, same text: nothing here reads the clock.
"""

from __future__ import annotations

from typing import Any

from interp_lab.report import _card_text as ct
from interp_lab.report import _format as f
from interp_lab.report.mdtext import code as _code
from interp_lab.report.mdtext import inline as _md
from interp_lab.report.mdtext import strong_token
from interp_lab.report.mdtext import table as _table


def _context(tokens: list[dict[str, Any]]) -> str:
    """A token window as inline Markdown, the focus token(s) in bold."""
    parts = [_md(t.get("token"), newline="⏎") for t in tokens]
    for i, t in enumerate(tokens):
        if t.get("focus"):
            parts[i] = strong_token(t.get("token"), "".join(parts[:i]), "".join(parts[i + 1:]))
    return "".join(parts)


def _example(ex: dict[str, Any]) -> str:
    tokens = ct.context(ex)
    if tokens:
        body = "… " + _context(tokens).strip() + " …"
    else:
        body = _md(f.clip(f.text(ex.get("text")).strip()), True) or "(no text)"
        if ex.get("token") is not None:
            body += f" → token {_code(ex['token'])}"
    meta = " · ".join(ct.example_meta(ex))
    return body + (f" — {_md(meta)}" if meta else "")


def _header(report: dict[str, Any]) -> list[str]:
    summary = f.d(report.get("summary"))
    model = report.get("model")
    lines = [f"# Feature report: {_md(report.get('criterion')) or 'untitled criterion'}"
             + (f" — {_md(model)}" if model else ""), ""]
    facts = [f"**Model** {_code(model or f.MISSING)}", f"**backend** {_code(report.get('backend') or f.MISSING)}"]
    if summary.get("statistic"):
        facts.append(f"**statistic** {_md(summary['statistic'])}"
                     + (f" ({_md(summary['criterion_type'])} criterion)" if summary.get("criterion_type") else ""))
    facts += [f"{f.num(summary[key])} {name}" for key, name in ct.SUMMARY_FACTS if summary.get(key) is not None]
    tiers = ct.tier_counts(report)
    facts.append(f"{len(ct.cards(report))} cards ("
                 + ", ".join(f"{_md(ct.TIER_TEXT.get(k, k))} {f.num(v)}" for k, v in tiers.items()) + ")")
    lines += [" · ".join(facts), ""]
    if report.get("synthetic"):
        lines += [f"> ⚠️ **{ct.SYNTHETIC_BANNER}.**", ""]
    for key, title in (("warnings", "Warnings"), ("notes", "Notes")):
        items = f.lst(report.get(key))
        if items:
            lines += [f"**{title}**", ""] + [f"- {_md(w, True)}" for w in items] + [""]
    return lines


def _inputs_and_splits(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    inputs = [f.d(i) for i in f.lst(report.get("inputs"))]
    if inputs:
        lines += ["## Inputs", ""]
        lines += _table(["role", "name", "sha256", "rows", "parameters"],
                        [[_md(i.get("role")), _code(i.get("name")), _code(f.short_hash(i.get("sha256"))),
                          f.num(i.get("rows")), _md(f.params(i.get("params"))) or f.MISSING] for i in inputs])
    splits = f.d(report.get("splits"))
    assoc = f.d(splits.get("association"))
    if assoc or splits.get("interventions"):
        lines += ["## Splits", ""]
        if assoc.get("rule"):
            lines += [f"{_md(assoc['rule'])} (split by {_md(assoc.get('source') or f.MISSING)}).", ""]
        scheme = f.d(assoc.get("scheme"))
        counts = f.d(assoc.get("counts"))
        if counts:
            lines += _table(["split", "share", "scored rows", "prompts"],
                            [[_md(k), f.pct(scheme.get(k)), f.num(f.d(v).get("rows")), f.num(f.d(v).get("prompts"))]
                             for k, v in counts.items()])
        rows = f.d(f.d(splits.get("interventions")).get("rows"))
        if rows:
            lines += ["Intervention rows: " + " · ".join(f"{_md(k)} {f.num(v)}" for k, v in rows.items()), ""]
    return lines


def _planted(report: dict[str, Any]) -> list[str]:
    planted = f.d(report.get("planted"))
    if not planted:
        return []
    by_id = {f.text(c.get("feature_id")): c for c in ct.cards(report)}
    order = sorted(planted, key=lambda k: (f.fnum(by_id.get(k, {}).get("rank")) or float("inf"), str(k)))
    rows = [[_code(k), _md(planted[k]), _md(by_id.get(k, {}).get("rank", "not reported")),
             _md(ct.tier_text(by_id.get(k, {}).get("evidence_tier")))] for k in order]
    return ["## Planted ground truth", "", "The synthetic generator planted these features with known roles: "
            "compare each role with the card's rank, tier and flags.", ""] + _table(
        ["feature", "planted role", "card rank", "tier"], rows)


def _summary(report: dict[str, Any]) -> list[str]:
    rows = []
    for i, c in enumerate(ct.cards(report)):
        h = ct.heldout(c)
        name, value, interval = ct.rank_stat(c)
        rows.append([_md(c.get("rank", i + 1)), _code(ct.feature_id(c, i)), _md(c.get("label")),
                     _md(ct.tier_text(c.get("evidence_tier"))), _md(c.get("direction") or f.MISSING),
                     f.num(c.get("importance")), f.with_ci(h.get("effect"), h.get("effect_ci")),
                     f"{name} {f.num(value)}" if f.fnum(value) is not None else f.MISSING,
                     _md(ct.causal_verdict(c)), _md(", ".join(map(str, f.lst(c.get("flags"))))) or f.MISSING])
    return ["## Features", ""] + _table(
        ["#", "feature", "label", "tier", "direction", "importance", "held-out effect [95% CI]", "AUROC / ρ",
         "causal", "flags"], rows)


def _association(card: dict[str, Any]) -> list[str]:
    if not f.d(card.get("association")):
        return []
    stat = ct.statistic(card)
    dsc, h = ct.discovery(card), ct.heldout(card)
    name = ct.rank_stat(card)[0]
    twice = name != ct.effect_name(stat)  # graded criteria: the effect is Spearman's rho itself

    def row(title: str, b: dict[str, Any], intervals: bool) -> list[Any]:
        def cell(key: str, sign: bool = False) -> str:
            v = (f.signed if sign else f.num)(b.get(key))
            with_interval = intervals and f.fnum(b.get(key)) is not None
            return (v + " " + f.ci(b.get(key + "_ci"))).strip() if with_interval else v
        rank = ct.rank_stat(card, b)
        rs = f.num(rank[1]) + (" " + f.ci(rank[2]) if intervals and f.fnum(rank[1]) is not None else "")
        return [title, f.num(b.get("rows")), f.num(b.get("positives")), cell("effect", True)] \
            + ([rs.strip()] if twice else []) + [cell("smd", True), cell("r", True), f.pval(b.get("p")),
                                                  f.pval(b.get("q"))]

    lines = [f"**Association** — effect is {ct.effect_name(stat)}"
             + (" = 2·AUROC − 1" if stat == "auroc" else "") + "; reported numbers come from held-out rows", ""]
    pos = "positives" if stat == "auroc" else "Σ score"  # graded: the scores' sum, not a count
    lines += _table(["rows", "n", pos, ct.effect_name(stat)] + ([name] if twice else []) + ["SMD", "r", "p", "q"],
                    [row("discovery (selection)", dsc, False), row("**held-out (reported)**", h, True)])
    if ct.top_activations_text(card):
        lines += [f"Top activations: {_md(ct.top_activations_text(card))}", ""]
    adj = ct.adjusted(card)
    if adj:
        cov = _md(", ".join(map(str, f.lst(adj.get("covariates"))))) or "covariates"
        lines += [f"Adjusted for {cov}: partial r {f.with_ci(adj.get('partial_r'), adj.get('partial_r_ci'))} "
                  f"vs raw r {f.signed(adj.get('raw_r'))}, "
                  f"retention {f.num(adj.get('retention'))}, p {f.pval(adj.get('p'))}"
                  + (" — **confounded**" if adj.get("confounded") else "")
                  + (f" ({_md(adj['method'])})" if adj.get("method") else ""), ""]
    return lines


def _spec_stab(card: dict[str, Any]) -> list[str]:
    spec, stab, half = ct.spec_stab(card)
    lines = []
    if spec:
        lines.append(f"- **Specificity {f.num(spec.get('score'))}**: {ct.specificity_text(spec)} "
                     f"({_md(spec.get('rows') or 'held-out')} rows)")
    if stab:
        line = f"- **Stability {f.num(stab.get('score'))}**: {_md(stab.get('method'))}"
        if half:
            line += (f"; split-half signs {'agree' if half.get('sign_agrees') else '**disagree**'} (discovery "
                     f"{f.signed(half.get('discovery_effect'))}, held-out {f.signed(half.get('heldout_effect'))})")
        lines.append(line)
    return lines + [""] if lines else []


def _causal(card: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    rows = []
    details = []
    for key, k in ct.causal_kinds(card):
        ctl, plc = f.d(k.get("controls")), f.d(k.get("placebo"))
        reasons = _md("; ".join(map(str, f.lst(k.get("reasons"))))) or "not met"
        verdict = "**yes**" if k.get("strong_causal") else f"no: {reasons}"
        side = f.d(k.get("side_effect"))
        rows.append([
            _md(key) + (f" ({_md(k['split'])})" if k.get("split") not in (None, "heldout") else ""),
            f.with_ci(k.get("mean_effect"), k.get("ci")),
            _md(ct.of_baseline(k)),
            f.num(k.get("n")) + (" (all available)" if k.get("n_is_all_available") else ""),
            f.num(ctl.get("n", 0)) + (f" ({_md(', '.join(map(str, f.lst(ctl.get('types')))))})" if ctl.get("types")
                                      else ""),
            f.signed(ctl.get("mean")),
            f.signed(ctl.get("threshold")) + (f", {_md(ctl['threshold_is'])}" if ctl.get("threshold_is") else ""),
            f.pct(ctl.get("fraction_exceeded")),
            _md(ct.causal_test(k)), f.pval(k.get("q_value")), f.signed(k.get("paired_lower_bound")),
            (f.with_ci(plc.get("mean"), plc.get("ci")) + (f" (n {f.num(plc.get('n'))})" if plc.get("n") else ""))
            if plc else f.MISSING,
            f.with_ci(side.get("mean"), side.get("ci")) if side else f.MISSING,
            verdict])
        facts = ct.causal_details(k)
        if facts:
            details.append(f"- `{_md(key)}`: " + "; ".join(_md(x) for x in facts))
    if rows:
        lines += ["**Causal evidence** (signed: positive = promotes the criterion; tested against controls as in "
                  "the causal rule below)", ""]
        lines += _table(["kind", "mean effect [95% CI]", "of baseline", "n", "controls", "controls' mean",
                         "controls' threshold", "controls exceeded", "p (test)", "q", "paired bound", "placebo",
                         "side effect (KL)", "strong_causal"], rows)
        if details:
            lines += details + [""]
    if f.fnum(card.get("reported_causal_effect")) is not None:
        lines += [f"Reported causal effect (from the feature dump; no interval, no controls): "
                  f"{f.signed(card['reported_causal_effect'])}", ""]
    if ct.text_match(card):
        lines += [_md(ct.text_match(card)), ""]
    side = f.d(card.get("side_effects"))
    if side:
        lines += [f"Side effects: {f.num(side.get('mean'))} {f.ci(side.get('ci'))} over {f.num(side.get('n'))} "
                  f"prompts ({_md(side.get('measure') or 'side effect')})", ""]
    return lines


def _fingerprint(card: dict[str, Any]) -> list[str]:
    parts = []
    for key, val in f.d(card.get("fingerprint")).items():
        desc, top = f.summarize(val)
        head = ", ".join(f"{_md(k)} {f.num(v)}" for k, v in top)
        parts.append(f"{_md(key)}: {_md(desc)}" + (f" (largest: {head})" if head else ""))
    return [f"Fingerprint (in full in report.json) — {'; '.join(parts)}", ""] if parts else []


def _card(report: dict[str, Any], card: dict[str, Any], i: int) -> list[str]:
    label = f" — {_md(card['label'])}" if card.get("label") else ""
    lines = [f"### {_md(card.get('rank', i + 1))}. {_code(ct.feature_id(card, i))}{label}", ""]
    facts = [f"**{_md(ct.tier_text(card.get('evidence_tier')))}**",
             _md(card.get("direction") or "direction unknown"), f"importance **{f.num(card.get('importance'))}**"]
    role = ct.planted_role(report, card)
    if role:
        facts.append(f"planted role {_code(role)}")
    lines += [" · ".join(facts), ""]
    weights = f.d(f.d(f.d(report.get("settings")).get("importance")).get("weights"))
    comps = [f"{_md(k)} {f.num(v)}" + (f" (weight {f.short(weights[k])})" if k in weights else "")
             for k, v in ct.components(card)]
    if comps:
        lines += ["Importance components: " + " · ".join(comps), ""]
    flags = [str(x) for x in f.lst(card.get("flags"))]
    if flags:
        lines += ["Flags: " + "; ".join(f"**{_md(x)}**" + (f" — {ct.FLAG_TEXT[x]}" if x in ct.FLAG_TEXT else "")
                                        for x in flags), ""]
    bits = ct.provenance_bits(card)
    if bits:
        lines += ["Provenance: " + " · ".join(_md(b) for b in bits), ""]
    lines += _association(card) + _spec_stab(card) + _causal(card)
    examples = [e for e in f.lst(card.get("examples")) if isinstance(e, dict)]
    if examples:
        lines += ["**Top activating examples**", ""] + [f"{n}. {_example(e)}" for n, e in enumerate(examples, 1)]
        lines.append("")
    return lines + _corpus_contexts(card) + _fingerprint(card)


def _corpus_contexts(card: dict[str, Any]) -> list[str]:
    cc = f.d(card.get("corpus_contexts"))
    ctx = [c for c in f.lst(cc.get("contexts")) if isinstance(c, dict)]
    if not ctx:
        return []
    head = (f"**Top activating contexts over {_md(cc.get('dataset'))}** ({f.num(cc.get('tokens_scanned'))} tokens "
            f"scanned at {_code(cc.get('hook'))} in {_md(cc.get('compute_dtype') or 'float32')}; left out: "
            f"{_md(cc.get('excluded'))})")
    if cc.get("next_token_in_targets") is not None:
        head += f"; next token in the criterion's targets: {f.num(cc['next_token_in_targets'])} of {len(ctx)}"
    rows = []
    for c in ctx:
        left, right = _md(c.get("left")), _md(c.get("right"))
        rows.append([f.num(c.get("value")), left + strong_token(c.get("token"), left, right) + right,
                     _code(c.get("next_token")), _md(c.get("doc"))])
    return [head, ""] + _table(["value", "context (token in bold)", "next token", "document"], rows)


def _settings(report: dict[str, Any]) -> list[str]:
    settings = f.d(report.get("settings"))
    if not settings:
        return []
    lines = ["## How this report was computed", ""]
    imp = f.d(settings.get("importance"))
    if imp:
        lines += ["**Importance**" + (f": {_md(imp['formula'])}." if imp.get("formula") else ""), ""]
        weights, comps = f.d(imp.get("weights")), f.d(imp.get("components"))
        names = list(dict.fromkeys(list(weights) + list(comps)))
        if names:
            lines += _table(["component", "weight", "meaning"],
                            [[_md(n), f.short(weights.get(n)), _md(comps.get(n) or "")] for n in names])
        for key in ("ordering", "tiers"):
            if imp.get(key):
                lines += [f"**{key.capitalize()}**: {_md(imp[key])}.", ""]
    if settings.get("selection"):
        lines += [f"**Selection rule**: {_md(settings['selection'])}.", ""]
    rule, measured = ct.causal_rule(settings)
    if rule:
        lines += [f"**Causal rule**: {_md(rule)}" + (f" **Measured**: {_md(measured)}." if measured else ""), ""]
    assoc = f.d(settings.get("association"))
    if assoc:
        lines += ["**Association statistics**", ""] + [f"- {_md(k, True)}: {_md(v)}" for k, v in assoc.items()] + [""]
    for key in ("ranking", "causal"):
        if f.d(settings.get(key)):
            lines += [f"**{key.capitalize()} parameters**: {_md(f.params(settings[key], 40))}", ""]
    prov = f.d(report.get("provenance"))
    if prov:
        lines += ["**Provenance**: " + "; ".join(
            f"{_md(k)} {_md(f.listing(k, v)) or f.MISSING}"
            for k, v in prov.items()), ""]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown (deterministic: same dict, same text)."""
    report = f.d(report)
    lines = _header(report) + _inputs_and_splits(report) + _planted(report) + _summary(report)
    for i, card in enumerate(ct.cards(report)):
        lines += _card(report, card, i)
    lines += _settings(report)
    created = f.d(report.get("created_with"))
    lines += ["---", "", f"{_md(report.get('schema_version') or 'report')} · written by "
              f"{_md(created.get('package') or 'interp-lab')} {_md(created.get('version') or '')}".rstrip()]
    return "\n".join(lines).rstrip() + "\n"
