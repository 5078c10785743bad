"""Formatting shared by report.md and report.html: numbers, safe accessors, wording.

Everything here is pure and deterministic, and tolerates missing or mistyped fields:
a report written by an older version, a feature dump or a hand-edited file renders.
"""

from __future__ import annotations

import math
import re
from typing import Any

SYNTHETIC_BANNER = "SYNTHETIC EVIDENCE — planted ground truth, measures no model"
MISSING = "—"
TIERS = ("causal", "held_out", "discovery_only")
TIER_TEXT = {"causal": "causal", "held_out": "held-out", "discovery_only": "discovery only"}
SUMMARY_FACTS = (("features_tested", "features tested"), ("significant_on_discovery", "significant on discovery"),
                 ("intervention_rows", "intervention rows"))
FLAG_TEXT = {
    "confounded": "the association is mostly explained by the covariates (little survives adjustment)",
    "direction_unstable": "discovery and held-out effects disagree in sign",
    "causal_direction_differs": "the intervention effect points the other way from the association",
    "small_effect": "a strong causal effect smaller than 5% of the baseline score",
    "controls_widened": "the control sampler widened its matching tolerance to find enough controls",
}


# --- safe access -------------------------------------------------------------------------------

def d(x: Any) -> dict[str, Any]:
    """``x`` if it is a dict, else an empty one."""
    return x if isinstance(x, dict) else {}


def lst(x: Any) -> list[Any]:
    """``x`` if it is a list, else an empty one."""
    return x if isinstance(x, list) else []


def fnum(x: Any) -> float | None:
    """``x`` as a finite-or-not float, or None when it is not a number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def pair(x: Any) -> tuple[float, float] | None:
    """A two-number interval, or None."""
    if isinstance(x, (list, tuple)) and len(x) == 2:
        lo, hi = fnum(x[0]), fnum(x[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def text(x: Any) -> str:
    return "" if x is None else str(x)


# C0 controls but tab and newline (ESC starts terminal escapes), DEL, C1 (CSI), and the bidirectional
# embeddings / overrides / isolates that reorder what a reader sees
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(x: Any) -> str:
    """``x`` as text without control characters: what every renderer (Markdown, HTML, terminal) shows of a
    string that came from a file."""
    return CONTROL.sub("", text(x))


# --- numbers -----------------------------------------------------------------------------------

def num(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits; integers with thousands separators."""
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if not isinstance(x, float):
        # not a number where one belongs (a hand-edited file): its letters, digits and plain punctuation
        return re.sub(r"[^\w .,:;+%/()-]", "", printable(x))[:40] or "?"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    a = abs(x)
    if a < 1e-3 or a >= 1e6:
        mant, exp = f"{x:.{max(digits - 1, 0)}e}".split("e")
        return f"{mant}e{int(exp)}"
    decimals = max(0, digits - 1 - math.floor(math.log10(a)))
    return f"{x:,.{decimals}f}"


def signed(x: Any, digits: int = 3) -> str:
    s = num(x, digits)
    return "+" + s if fnum(x) is not None and fnum(x) > 0 and not s.startswith("+") else s


def pval(p: Any) -> str:
    """p and q values: plain when not small, scientific below 0.001."""
    v = fnum(p)
    if v is None:
        return MISSING
    if v <= 1e-300:
        return "≤ 1e-300"  # the floor the ranker reports (or an underflow in older reports)
    if v < 1e-3:
        mant, exp = f"{v:.2e}".split("e")
        return f"{mant}e{int(exp)}"
    return num(v)


def short(x: Any) -> str:
    """Settings and scores as written (0.4, 1, 0.7345), not padded to significant digits."""
    v = fnum(x)
    return num(x) if v is None or isinstance(x, int) else f"{v:.4g}"


def pct(x: Any) -> str:
    v = fnum(x)
    return MISSING if v is None else f"{100 * v:.1f}%"


def ci(x: Any, digits: int = 3) -> str:
    p = pair(x)
    return f"[{num(p[0], digits)}, {num(p[1], digits)}]" if p else ""


def with_ci(value: Any, interval: Any, digits: int = 3) -> str:
    if fnum(value) is None:
        return MISSING
    return (signed(value, digits) + " " + ci(interval, digits)).strip()


def tier_text(tier: Any) -> str:
    t = text(tier)
    return TIER_TEXT.get(t, t) or MISSING


def short_hash(h: Any, n: int = 12) -> str:
    h = text(h)
    return h[:n] + "…" if len(h) > n else (h or MISSING)


def params(p: Any, limit: int = 12) -> str:
    items = list(d(p).items())
    out = ", ".join(f"{k}={v}" for k, v in items[:limit])
    return out + (" …" if len(items) > limit else "")


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
    return "; ".join(parts) or MISSING


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


def ratio(x: Any) -> str:
    v = fnum(x)
    return MISSING if v is None else f"{num(v)}×"


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


def split_space(token: Any) -> tuple[str, str, str]:
    """A token as (leading whitespace, core, trailing whitespace); newlines shown as ⏎."""
    tok = text(token).replace("\r", "").replace("\n", "⏎")
    core = tok.strip()
    if not core:
        return "", tok, ""
    lead = tok[: len(tok) - len(tok.lstrip())]
    return lead, core, tok[len(lead) + len(core):]


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


def brief(val: Any, depth: int = 0) -> str:
    """A fingerprint value in a few words, never dumped: a number as it is, a vector by its length and
    norm, a list of words by its first few, a mapping by its first fields (their values briefed), deeper
    ones by their size."""
    if val is None or isinstance(val, (bool, int, float)):
        return num(val)
    if isinstance(val, str):
        return clip(printable(val), 80)
    if isinstance(val, list):
        values = [fnum(v) for v in val]
        if val and all(v is not None for v in values):
            return f"{len(val):,} numbers, norm {num(math.sqrt(sum(v * v for v in values)))}"
        if val and all(isinstance(v, str) for v in val):
            shown = ", ".join(repr(clip(printable(v), 30)) for v in val[:3])
            return f"{len(val):,} items ({shown}{', …' if len(val) > 3 else ''})"
        return f"{len(val):,} items"
    if isinstance(val, dict):
        if depth > 0 or not val:
            return f"{len(val):,} fields"
        items = list(val.items())
        return ", ".join(f"{k} {brief(v, depth + 1)}" for k, v in items[:4]) + (
            f", … ({len(items):,} fields)" if len(items) > 4 else "")
    return clip(printable(val), 80)


def summarize(val: Any, show: int = 4) -> tuple[str, list[tuple[str, Any]]]:
    """A fingerprint entry as a one-line description and a few of its items, never the whole of it (all of
    it is in report.json): a mapping or list of numbers by its size and range with its ``show`` largest
    entries by magnitude; anything else briefed (``brief``)."""
    if isinstance(val, dict):
        items = [(str(k), v) for k, v in val.items()]
    elif isinstance(val, list) and all(fnum(v) is not None for v in val):
        items = [(f"#{i}", v) for i, v in enumerate(val)]
    else:
        return brief(val), []
    values = [fnum(v) for _, v in items]
    if not items or any(v is None for v in values):
        return brief(val), []
    desc = f"{len(items):,} {'entry' if len(items) == 1 else 'entries'}"
    if len(values) > 1:
        desc += f", from {num(min(values))} to {num(max(values))}, {sum(v != 0 for v in values):,} non-zero"
    order = sorted(range(len(items)), key=lambda i: (-abs(values[i]), i))
    return desc, [items[i] for i in order[:show]]


def clip(s: str, n: int = 600) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


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


def ranges(ints: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    out: list[str] = []
    for i in sorted(set(ints)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def hooks_text(hooks: list[Any]) -> str:
    """Hook names grouped by their per-layer pattern: ``blocks.{0-29}.mlp.hook_post, ...``."""
    groups: dict[str, list[int]] = {}
    other: list[str] = []
    for h in map(str, hooks):
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", h)
        if m:
            groups.setdefault(m.group(2), []).append(int(m.group(1)))
        else:
            other.append(h)
    parts = [f"blocks.{i[0]}.{k}" if len(i) == 1 else f"blocks.{{{ranges(i)}}}.{k}" for k, i in groups.items()]
    return ", ".join(parts + other)


def listing(key: str, v: Any) -> str:
    """A provenance value as text (hook lists grouped by layer)."""
    if not isinstance(v, list):
        return text(v)
    return hooks_text(v) if key == "hooks" else ", ".join(map(str, v))
