"""report.md: the report for people who read it in a terminal, an editor or a pull request."""

from __future__ import annotations

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


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def _example_text(ex: dict[str, Any]) -> str:
    tokens = context_tokens(ex)
    if tokens:
        parts = []
        for t in tokens:
            tok = (t.get("token") or "").replace("\n", "⏎")
            if t.get("focus"):
                core = tok.lstrip()
                tok = tok[: len(tok) - len(core)] + f"**{core or tok}**"
            parts.append(tok)
        return "… " + "".join(parts).strip() + " …"
    text = (ex.get("text") or "").replace("\n", " ")
    if ex.get("token"):
        return f"{text}  → token `{ex['token']}`"
    return text


def _card(card: dict[str, Any]) -> list[str]:
    label = f" — {card['label']}" if card.get("label") else ""
    lines = [f"### {card.get('rank')}. `{card['feature_id']}`{label}", ""]
    flags = ", ".join(card.get("flags") or []) or "none"
    lines.append(f"**{card.get('evidence_tier')}** · {card.get('direction') or 'direction unknown'} · "
                 f"importance {num(card.get('importance'))} · flags: {flags}")
    comps = card.get("importance_components") or {}
    if comps:
        lines.append("importance components: " + ", ".join(f"{k} {num(v)}" for k, v in comps.items()))
    lines.append("")
    assoc = card.get("association")
    if assoc:
        stat = statistic(card)
        d, h = discovery(card), heldout(card)
        key = "auroc" if stat == "auroc" else "spearman"
        rows = [
            ["discovery (selection)", d.get("rows"), signed(d.get("effect")), num(d.get(key)), num(d.get("smd")),
             num(d.get("r")), pval(d.get("p")), pval(d.get("q"))],
            ["held-out (reported)", h.get("rows"), with_ci(h.get("effect"), h.get("effect_ci")),
             f"{num(h.get(key))} {ci(h.get(key + '_ci'))}", f"{num(h.get('smd'))} {ci(h.get('smd_ci'))}",
             f"{num(h.get('r'))} {ci(h.get('r_ci'))}", pval(h.get("p")), pval(h.get("q"))],
        ]
        effect = "Somers' D" if stat == "auroc" else "Spearman rho"
        lines += ["**Association**", ""]
        lines += _table(["rows", "n", f"effect ({effect})", stat.upper() if stat == "auroc" else "rho", "SMD",
                         "r", "p", "q"], rows)
        adj = assoc.get("adjusted")
        if adj:
            lines.append(f"Adjusted for {', '.join(adj.get('covariates') or [])}: partial r "
                         f"{num(adj.get('partial_r'))} {ci(adj.get('partial_r_ci'))} (raw r {num(adj.get('raw_r'))}, "
                         f"retention {num(adj.get('retention'))}, p {pval(adj.get('p'))})"
                         + (" — **confounded**" if adj.get("confounded") else ""))
            lines.append("")
    spec, stab = card.get("specificity"), card.get("stability")
    if spec:
        lines.append(f"Specificity {num(spec.get('score'))}: fires on {num(spec.get('firing_rate_pos'))} of positives "
                     f"vs {num(spec.get('firing_rate_neg'))} of negatives; mean |activation| "
                     f"{num(spec.get('mean_abs_pos'))} vs {num(spec.get('mean_abs_neg'))} (held-out rows).")
    if stab:
        half = stab.get("split_half") or {}
        lines.append(f"Stability {num(stab.get('score'))}: {stab.get('method', '')}; split-half signs "
                     f"{'agree' if half.get('sign_agrees') else 'disagree'} (discovery {signed(half.get('discovery_effect'))}, "
                     f"held-out {signed(half.get('heldout_effect'))}).")
    if spec or stab:
        lines.append("")
    causal = card.get("causal") or {}
    if causal:
        rows = []
        for key, k in causal.items():
            ctl = k.get("controls") or {}
            plc = k.get("placebo") or {}
            rows.append([
                key, k.get("split"), with_ci(k.get("mean_effect"), k.get("ci")),
                f"{k.get('n')}" + (" (all available)" if k.get("n_is_all_available") else ""),
                f"{ctl.get('n', 0)}" + (f" ({', '.join(ctl.get('types') or [])})" if ctl.get("types") else ""),
                signed(ctl.get("threshold")) if ctl.get("n") else "-",
                with_ci(plc.get("mean"), plc.get("ci")) if plc else "-",
                "**yes**" if k.get("strong_causal") else "no: " + "; ".join(k.get("reasons") or []),
            ])
        lines += ["**Causal evidence** (signed: positive = promotes the criterion)", ""]
        lines += _table(["kind", "split", "mean effect [95% CI]", "n", "controls", "controls' threshold", "placebo",
                         "strong_causal"], rows)
    if card.get("reported_causal_effect") is not None:
        lines += [f"Reported causal effect (feature dump, no interval): {signed(card['reported_causal_effect'])}", ""]
    side = card.get("side_effects")
    if side:
        lines += [f"Side effects: {num(side.get('mean'))} {ci(side.get('ci'))} over {side.get('n')} prompts "
                  f"({side.get('measure', '')})", ""]
    examples = card.get("examples") or []
    if examples:
        lines += ["**Top activating contexts**", ""]
        for ex in examples:
            meta = []
            if ex.get("activation") is not None:
                meta.append(f"act {num(ex['activation'])}")
            if ex.get("criterion_score") is not None:
                meta.append(f"score {num(ex['criterion_score'])}")
            if ex.get("split"):
                meta.append(ex["split"])
            prefix = f"`{ex['prompt_id']}` " if ex.get("prompt_id") else ""
            lines.append(f"- {prefix}{_example_text(ex)}" + (f" ({', '.join(meta)})" if meta else ""))
        lines.append("")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown (deterministic: same dict, same text)."""
    lines = [f"# {report.get('criterion', '')}", ""]
    lines.append(f"model `{report.get('model') or '-'}` · backend `{report.get('backend')}` · "
                 f"{(report.get('created_with') or {}).get('package', 'interp-lab')} "
                 f"{(report.get('created_with') or {}).get('version', '')}")
    lines.append("")
    if report.get("synthetic"):
        lines += ["> **SYNTHETIC EVIDENCE — planted ground truth, measures no model.**", ""]
    for w in report.get("warnings") or []:
        lines.append(f"> warning: {w}")
    for n in report.get("notes") or []:
        lines.append(f"> note: {n}")
    if report.get("warnings") or report.get("notes"):
        lines.append("")
    summary = report.get("summary") or {}
    if summary:
        tiers = summary.get("tiers") or {}
        lines.append(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items() if k != "tiers")
                     + ("; tiers " + ", ".join(f"{k} {v}" for k, v in tiers.items()) if tiers else ""))
        lines.append("")
    inputs = report.get("inputs") or []
    if inputs:
        lines += ["## Inputs", ""]
        lines += _table(["role", "name", "sha256", "rows"],
                        [[i.get("role"), i.get("name"), (i.get("sha256") or "-")[:16], num(i.get("rows"))]
                         for i in inputs])
    splits = (report.get("splits") or {}).get("association")
    if splits:
        counts = splits.get("counts") or {}
        lines += ["## Splits", "", f"{splits.get('rule', '')} (splits {splits.get('source')})", ""]
        lines += _table(["split", "scored rows", "prompts"],
                        [[k, num(v.get("rows")), num(v.get("prompts"))] for k, v in counts.items()])
    cards = report.get("cards") or []
    lines += ["## Features", ""]
    lines += _table(
        ["#", "feature", "label", "tier", "direction", "importance", "held-out effect [95% CI]", "causal"],
        [[c.get("rank"), f"`{c['feature_id']}`", c.get("label") or "", c.get("evidence_tier"),
          c.get("direction") or "-", num(c.get("importance")),
          with_ci(heldout(c).get("effect"), heldout(c).get("effect_ci")), causal_verdict(c)] for c in cards])
    for c in cards:
        lines += _card(c)
    settings = report.get("settings") or {}
    if settings:
        imp = settings.get("importance") or {}
        lines += ["## How this report was computed", ""]
        if imp:
            lines.append("Importance: " + (imp.get("formula") or "") + "; weights "
                         + ", ".join(f"{k} {v}" for k, v in (imp.get("weights") or {}).items()) + ".")
            if imp.get("tiers"):
                lines.append(f"Tiers: {imp['tiers']}.")
            if imp.get("ordering"):
                lines.append(f"Order: {imp['ordering']}.")
        for key in ("selection", "causal_rule"):
            if settings.get(key):
                lines.append(f"{key.replace('_', ' ').capitalize()}: {settings[key]}.")
        for key, text in (settings.get("association") or {}).items():
            lines.append(f"Association ({key}): {text}.")
        ranking = settings.get("ranking") or {}
        if ranking:
            lines.append("Ranking settings: " + ", ".join(f"{k} {v}" for k, v in ranking.items()) + ".")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
