"""What report.md and report.html say about a report and its cards: the wording of tiers and flags,
tolerant accessors of the report's and a card's fields, and the text of specific blocks (causal
entries and the causal rule, provenance, examples, specificity, top activations).

Pure and deterministic like ``report._format`` (whose accessors and number formats it uses), and
as tolerant of missing or mistyped fields; every string is plain text that each renderer escapes.
"""

from __future__ import annotations

import re
from typing import Any

from interp_lab.report._format import (
    MISSING,
    d,
    fnum,
    hooks_text,
    lst,
    num,
    pair,
    pct,
    pval,
    ratio,
    short,
    short_hash,
    signed,
    text,
)

SYNTHETIC_BANNER = "SYNTHETIC EVIDENCE — planted ground truth, measures no model"
TIERS = ("causal", "held_out", "discovery_only", "imported")
TIER_TEXT = {"causal": "causal", "held_out": "held-out", "discovery_only": "discovery only",
             "imported": "imported (not measured)"}
SUMMARY_FACTS = (("features_tested", "features tested"), ("significant_on_discovery", "significant on discovery"),
                 ("intervention_rows", "intervention rows"))
FLAG_TEXT = {
    "confounded": "the association is mostly explained by the covariates (little survives adjustment)",
    "direction_unstable": "discovery and held-out effects disagree in sign",
    "causal_direction_differs": "the intervention effect points the other way from the association",
    "small_effect": "a strong causal effect smaller than 5% of the baseline score",
    "controls_widened": "the control sampler widened its matching tolerance to find enough controls",
}


def tier_text(tier: Any) -> str:
    t = text(tier)
    return TIER_TEXT.get(t, t) or MISSING


# --- report and card fields --------------------------------------------------------------------


def heldout(card: dict[str, Any]) -> dict[str, Any]:
    return d(d(card.get("association")).get("heldout"))


def discovery(card: dict[str, Any]) -> dict[str, Any]:
    return d(d(card.get("association")).get("discovery"))


def adjusted(card: dict[str, Any]) -> dict[str, Any]:
    return d(d(card.get("association")).get("adjusted"))


def statistic(card: dict[str, Any]) -> str:
    return text(d(card.get("association")).get("statistic")) or "auroc"


def effect_name(stat: str) -> str:
    return "Somers' D" if stat == "auroc" else "Spearman ρ"


def rank_stat(card: dict[str, Any], block: dict[str, Any] | None = None) -> tuple[str, Any, Any]:
    """The rank statistic next to the effect: AUROC (binary) or Spearman ρ (graded)."""
    b = heldout(card) if block is None else block
    if statistic(card) == "auroc":
        return "AUROC", b.get("auroc"), b.get("auroc_ci")
    if "spearman" in b:
        return "Spearman ρ", b.get("spearman"), b.get("spearman_ci")
    return "Spearman ρ", b.get("effect"), b.get("effect_ci")


def causal_kinds(card: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(str(k), v) for k, v in d(card.get("causal")).items() if isinstance(v, dict)]


def causal_verdict(card: dict[str, Any]) -> str:
    """One line: each intervention kind's effect and whether it is strong causal evidence."""
    parts = [f"{key} {signed(k.get('mean_effect'))} ({'strong' if k.get('strong_causal') else 'not strong'})"
             for key, k in causal_kinds(card)]
    if fnum(card.get("reported_causal_effect")) is not None:
        parts.append(f"reported {signed(card['reported_causal_effect'])} (no interval)")
    if d(card.get("text_match")):
        parts.append(f"text match {num(d(card.get('text_match')).get('score'))} (not measured)")
    return "; ".join(parts) or MISSING


def text_match(card: dict[str, Any]) -> str | None:
    """An imported card's match of descriptions to the criterion, in one sentence (None without one)."""
    m = d(card.get("text_match"))
    if not m:
        return None
    sims = ", ".join(f"{k} {num(v)}" for k, v in d(m.get("similarity")).items() if fnum(v) is not None)
    source = d(card.get("provenance")).get("source") or "another source"
    return (f"Imported from {source}: its descriptions match the criterion with score {num(m.get('score'))} "
            f"({sims}; cosine similarity, all-MiniLM-L6-v2). Not measured on the model: no held-out "
            "association, no causal test.")


TEST_TEXT = {"predictive_t": "predictive t", "robust_t": "robust t"}


def causal_test(k: dict[str, Any]) -> str:
    """The test against the controls, in one cell: p (which test), nothing for reports before 0.4."""
    if k.get("p_value") is None:
        return MISSING
    return f"{pval(k['p_value'])} ({TEST_TEXT.get(text(k.get('test')), text(k.get('test')) or '?')})"


def of_baseline(k: dict[str, Any]) -> str:
    """Effect / baseline as a percentage of the baseline score (flagged when small), or the baseline alone."""
    v, base = fnum(k.get("effect_over_baseline")), fnum(k.get("baseline_mean"))
    if v is None:
        return MISSING if base is None else f"(baseline {num(base)})"
    return f"{pct(v)} of {num(base)}" + (" (small_effect)" if k.get("small_effect") else "")


def causal_details(k: dict[str, Any]) -> list[str]:
    """Plain-text facts of one causal entry beyond its table row (each renderer escapes them)."""
    out = []
    claimed = text(k.get("claimed_direction"))
    if k.get("sides") == "two-sided" or (k.get("p_value") is not None and not claimed):
        out.append("tested two-sided (no discovery direction: the direction is the held-out sign, p doubled, "
                   "bound at 97.5%)")
    elif claimed:
        out.append(f"tested one-sided: {claimed} (from {text(k.get('claim_source')) or 'discovery'})")
    er = d(k.get("effect_ratio"))
    if er:
        out.append(f"effect / controls' median {ratio(er.get('median'))}, / their 95th percentile "
                   f"{ratio(er.get('p95'))}")
    if fnum(k.get("share_in_direction")) is not None:
        out.append(f"{pct(k['share_in_direction'])} of prompts move in the tested direction")
    pos = d(k.get("positives"))
    if pos:
        out.append(f"on the {num(pos.get('n'))} positive prompts: {signed(pos.get('mean_effect'))}, "
                   f"{pct(pos.get('share_in_direction'))} in the tested direction")
    edit = d(k.get("edit_rms"))
    if edit:
        out.append(f"edit RMS {num(edit.get('feature'))} (controls' median {num(edit.get('controls_median'))})")
    for name, fam in d(d(k.get("controls")).get("families")).items():
        fam = d(fam)
        line = (f"{name} controls: {num(fam.get('n'))} ({', '.join(map(text, lst(fam.get('types'))))}"
                + (f"; {text(fam.get('matched_on'))}" if fam.get("matched_on") else "") + ")")
        if fam.get("p_value") is not None:
            line += (f", p {pval(fam['p_value'])} ({TEST_TEXT.get(text(fam.get('test')), text(fam.get('test')))}; "
                     f"excess kurtosis {num(fam.get('excess_kurtosis'))}), paired bound "
                     f"{signed(fam.get('paired_lower_bound'))}")
        if fam.get("kl_median") is not None:
            line += f", their median KL {num(fam['kl_median'])}"
        if fam.get("tolerance_widened"):
            line += f", matching tolerance widened to {pct(fam.get('match_tolerance'))}"
        out.append(line)
    dose = [d(r) for r in lst(k.get("dose_response"))]
    if dose:
        out.append("dose-response on calibration prompts (strength: gain, KL; controls' median): " + "; ".join(
            f"{num(r.get('strength'))}: {signed(r.get('gain'))}, KL {num(r.get('kl'))}"
            + (f" ({signed(r.get('controls_gain_median'))}, KL {num(r.get('controls_kl_median'))})"
               if r.get("controls_gain_median") is not None else "") for r in dose))
    if k.get("kl_budget") is not None:
        out.append(f"KL budget {num(k['kl_budget'])} nats" + (" (no strength tried was within it)"
                                                             if k.get("within_budget") is False else ""))
    return out


def causal_rule(settings: dict[str, Any]) -> tuple[str, str]:
    """(the rule in words, its measured size and power) from ``settings.causal_rule`` (a string before 0.4)."""
    rule = settings.get("causal_rule")
    if not isinstance(rule, dict):
        return text(rule), ""
    m = d(rule.get("measured"))
    if not m:
        return text(rule.get("rule")), ""
    size = d(m.get("size"))
    parts = [f"measured on {text(m.get('design'))}" if m.get("design") else "measured"]
    if size:
        lo_hi = pair(size.get("ci"))
        parts.append(f"size {pct(size.get('rate'))}" + (f" [{pct(lo_hi[0])}, {pct(lo_hi[1])}]" if lo_hi else "")
                     + f" of {num(size.get('tests'))} null tests called strong")
    power = d(m.get("power"))
    if power:
        parts.append("power " + ", ".join(f"{pct(d(v).get('rate'))} at {k} control-SDs" for k, v in power.items()))
    if m.get("commit"):
        parts.append(f"by {text(m.get('by'))} at commit {short_hash(m['commit'])}")
    return text(rule.get("rule")), "; ".join(parts)


def tier_counts(report: dict[str, Any]) -> dict[str, int]:
    tiers = d(d(report.get("summary")).get("tiers"))
    if tiers:
        return {str(k): v for k, v in tiers.items()}
    counts = {t: 0 for t in TIERS}
    for c in lst(report.get("cards")):
        t = text(d(c).get("evidence_tier")) or "discovery_only"
        counts[t] = counts.get(t, 0) + 1
    return counts


def cards(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in lst(report.get("cards")) if isinstance(c, dict)]


def feature_id(card: dict[str, Any], i: int = 0) -> str:
    return text(card.get("feature_id")) or f"feature {i + 1}"


def anchors(cards: list[dict[str, Any]]) -> list[str]:
    """One unique, attribute-safe anchor per card, derived from its feature id (no random ids)."""
    seen: set[str] = set()
    out = []
    for i, c in enumerate(cards):
        a = "card-" + (re.sub(r"[^A-Za-z0-9_.:-]+", "-", text(c.get("feature_id"))) or str(i + 1))
        while a in seen:
            a += f"-{i + 1}"
        seen.add(a)
        out.append(a)
    return out


def planted_role(report: dict[str, Any], card: dict[str, Any]) -> str:
    return text(d(report.get("planted")).get(text(card.get("feature_id"))) or d(card.get("provenance")).get(
        "planted_role"))


def components(card: dict[str, Any]) -> list[tuple[str, Any]]:
    return list(d(card.get("importance_components")).items())


def provenance_bits(card: dict[str, Any]) -> list[str]:
    prov = d(card.get("provenance"))
    bits = [text(prov.get("source"))]
    if prov.get("evidence") and prov.get("evidence") != prov.get("source"):
        bits.append(text(prov["evidence"]))
    bits += [f"model {m}" for m in lst(prov.get("models"))]
    hooks = lst(prov.get("hooks"))
    if hooks:
        bits.append(("hook " if len(hooks) == 1 else "hooks ") + hooks_text(hooks))
    if card.get("layer") is not None:
        bits.append(f"layer {card['layer']}")
    if card.get("selected_on"):
        by = d(card.get("association")).get("selected_by")
        bits.append(f"selected on {card['selected_on']}" + (f" by {text(by).replace('_', ' ')}" if by else ""))
    return [b for b in bits if b]


def context(example: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in lst(example.get("context")) if isinstance(t, dict)]


def example_meta(ex: dict[str, Any]) -> list[str]:
    meta = []
    if fnum(ex.get("activation")) is not None:
        meta.append(f"act {num(ex['activation'])}")
    if fnum(ex.get("criterion_score")) is not None:
        meta.append(f"score {short(ex['criterion_score'])}")
    if ex.get("split"):
        meta.append(text(ex["split"]))
    if ex.get("prompt_id") is not None:
        meta.append(text(ex["prompt_id"]))
    if ex.get("token_index") is not None and not context(ex):
        meta.append(f"token #{ex['token_index']}")
    return meta


def spec_stab(card: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A card's specificity, stability and the stability's split-half check (each {} when absent)."""
    spec, stab = d(card.get("specificity")), d(card.get("stability"))
    return spec, stab, d(stab.get("split_half"))


def specificity_text(spec: dict[str, Any]) -> str:
    """The specificity block as one sentence (numbers only, safe in both renderers)."""
    return (f"fires on {pct(spec.get('firing_rate_pos'))} of positives vs {pct(spec.get('firing_rate_neg'))} "
            f"of negatives; mean |activation| {num(spec.get('mean_abs_pos'))} vs {num(spec.get('mean_abs_neg'))}")


def top_activations_text(card: dict[str, Any]) -> str:
    """The association's top-activations block as one sentence (numbers only, safe in both renderers)."""
    ta = d(d(card.get("association")).get("top_activations"))
    if not ta:
        return ""
    h, dsc = d(ta.get("heldout")), d(ta.get("discovery"))
    return (f"mean score of the {num(ta.get('rows'))} highest-activating rows {num(h.get('mean_score'))} held-out "
            f"against {num(h.get('rows_mean_score'))} over all (fires on {num(h.get('firing'))} rows, p "
            f"{pval(h.get('p'))}); discovery {num(dsc.get('mean_score'))} against {num(dsc.get('rows_mean_score'))}"
            + (f", rank {num(dsc.get('rank'))} by it" if dsc.get("rank") is not None else ""))
