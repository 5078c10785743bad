"""Transfer documents as Markdown: transfer.md of one ``interp-lab transfer``, table.md over several."""

from __future__ import annotations

from typing import Any

from interp_lab.report import _format as fmt
from interp_lab.report import mdtext as md


def _num(x: Any, fmt: str = "{:+.4g}") -> str:
    return "—" if x is None else fmt.format(x)


def _ci(e: dict[str, Any] | None) -> str:
    """An effect with its interval and kind, as Markdown."""
    if not e:
        return "—"
    lo, hi = e.get("ci") or (None, None)
    return f"{_num(e['mean_effect'])} [{_num(lo)}, {_num(hi)}] ({md.inline(e['kind'])})"


def table_rows(doc: dict[str, Any], models: bool = False) -> list[str]:
    """Markdown table rows: criterion, (with ``models``: left → right model,) pair, match score, p-value,
    source effect, transfer effect with CI, controls' 95th percentile, verdict."""
    out = []
    way = [md.inline(f"{doc['left']['model']} → {doc['right']['model']}")] if models else []
    for e in doc["pairs"]:
        t = e.get("target")
        verdict_ = "not tested" if e["transfers"] is None else ("**transfers**" if e["transfers"] else "does not")
        out.append(md.row([md.inline(doc["criterion"]), *way, md.inline(f"{e['left_feature']} → {e['right_feature']}"),
                           f"{e['score']:.3f}", f"{e['p_value']:.3g}", _ci(e.get("source")), _ci(t), _num(None if not t else t["controls_p95"], "{:.4g}"),
                           f"{verdict_} ({md.inline(e['why'])})"]))
    return out


def table_head(models: bool = False) -> list[str]:
    cols = ["criterion", *(["models"] if models else []), "pair (left → right)", "match score", "p-value",
            "source effect [95% CI]", "transfer effect [95% CI]", "controls' p95", "verdict"]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def render_markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    lines = [f"# Causal transfer: {md.inline(doc['left']['model'])} → {md.inline(doc['right']['model'])}", "",
             f"Criterion: {md.strong_token(doc['criterion'])}", "",
             f"{s['transfer']} of {s['tested']} tested pairs transfer, {s['do_not_transfer']} do not "
             f"(base rate over the right report's tested cards: "
             f"{_num(s['base_rate'], '{:.0%}')}); "
             f"{s['pairs'] - s['tested']} of the {s['pairs']} pairs are not tested (their left feature is not "
             "strong_causal on its own model).", "",
             *table_head(), *table_rows(doc), "", "## Method", ""]
    lines += [f"- {md.strong_token(k)}: {md.inline(v)}" for k, v in doc["method"].items()]
    return "\n".join(lines) + "\n"



def render_table(doc: dict[str, Any], docs: list[dict[str, Any]]) -> str:
    """table.md: the counts over several transfer documents (``docs``, a criterion each), then every pair."""
    summary, total, distinct = (doc["summary"][k] for k in ("by_criterion", "total", "distinct_pairs"))
    lines = ["# Cross-model causal transfer", "",
             f"{total['transfer']} of {total['tested']} tests of matched pairs transfer, "
             f"{total['do_not_transfer']} do not."]
    if distinct["tested"] < total["tested"]:  # some pairs were tested both ways
        lines.append(f"Counting a pair tested both ways once: {distinct['tested']} distinct pairs, "
                     f"{distinct['transfer']} transfer every way they were tested, {distinct['one_way']} "
                     f"one way only, {distinct['do_not_transfer']} in no direction.")
    lines += ["", "| criterion (models) | tested | transfer | do not | base rate |", "|---|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(md.row([md.inline(name), *(fmt.num(s[k]) for k in ("tested", "transfer", "do_not_transfer")),
                             _num(s["base_rate"], "{:.0%}")]))
    lines += ["", *table_head(models=True)]
    for x in docs:
        lines += table_rows(x, models=True)
    lines += ["", "Effects are signed (positive: the feature promotes the criterion); the source effect is the "
                  "left feature's on its own model, the transfer effect the matched feature's on the other "
                  "model's held-out prompts; a pair transfers when the latter is strong_causal with the same "
                  "sign. The base rate is the share of the right report's tested cards that would pass the "
                  "same test against each left feature.", ""]
    return "\n".join(lines)

