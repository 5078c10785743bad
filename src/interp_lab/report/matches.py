"""matches.md and matches.html: a matches.json document for people (same content in both)."""

from __future__ import annotations

from html import escape
from typing import Any

from interp_lab.report import _format as f
from interp_lab.report import _theme as theme
from interp_lab.report import mdtext as md

SHOWN = 200  # one-to-one pairs listed (all are in matches.json)


def _side(info: dict[str, Any]) -> str:
    what = info.get("path") or "(in memory)"
    bits = [f"{info.get('kind', 'features')} {what}", f"{f.num(info.get('features'))} features"]
    if info.get("model"):
        bits.append(f"model {info['model']}")
    if info.get("criterion"):
        bits.append(f"criterion “{info['criterion']}”")
    if info.get("sha256"):
        bits.append(f"sha256 {str(info['sha256'])[:12]}")
    return " · ".join(bits)


def _pairs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kept = [m for m in f.lst(doc.get("matches")) if m.get("one_to_one")]
    return sorted(kept, key=lambda m: (-float(m.get("score") or 0), str(m.get("left_feature"))))


def _parts(doc: dict[str, Any]) -> list[str]:
    return list(f.d(f.d(doc.get("method")).get("weights")))


def _method_lines(doc: dict[str, Any]) -> list[str]:
    method = f.d(doc.get("method"))
    out = []
    for part, w in f.d(method.get("weights")).items():
        info = f.d(f.d(method.get("components")).get(part))
        extra = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info.items() if k != "measure")
        out.append(f"{part} (weight {f.num(w)}): {info.get('measure', '')}" + (f"; {extra}" if extra else ""))
    for part, info in f.d(method.get("components")).items():
        if part not in f.d(method.get("weights")) and f.d(info).get("skipped"):
            out.append(f"{part}: not used ({info['skipped']})")
    out += [f"combined: {method.get('combined', '')}", f"null model: {method.get('null_model', '')}",
            f"one-to-one: {method.get('one_to_one', '')}", f"many-to-many: {method.get('many_to_many', '')}"]
    return out


def _row(m: dict[str, Any], parts: list[str]) -> list[str]:
    comps, cps = f.d(m.get("components")), f.d(m.get("component_p_values"))
    return ([str(m.get("left_feature")), str(m.get("left_label") or ""), str(m.get("right_feature")),
             str(m.get("right_label") or ""), f.num(m.get("score")), f.pval(m.get("p_value"))]
            + [f"{f.signed(comps.get(p))} (p {f.pval(cps.get(p))})" for p in parts])


def _head(parts: list[str]) -> list[str]:
    return ["left", "left label", "right", "right label", "score", "p"] + parts


def render_markdown(doc: dict[str, Any]) -> str:
    doc = f.d(doc)
    summary, parts = f.d(doc.get("summary")), _parts(doc)
    pairs = _pairs(doc)
    lines = ["# Feature matches", "", f"- **Left**: {md.inline(_side(f.d(doc.get('left'))))}",
             f"- **Right**: {md.inline(_side(f.d(doc.get('right'))))}",
             f"- {f.num(summary.get('pairs'))} candidate pairs, {f.num(summary.get('one_to_one_pairs'))} one-to-one, "
             f"{f.num(summary.get('pairs_p_below_alpha'))} with p below alpha"]
    for part, shares in f.d(summary.get("one_to_one_above")).items():
        lines.append(f"- left features whose one-to-one pair's {md.inline(part)} is above "
                     + ", ".join(f"{md.inline(t)}: {f.num(100 * v) if f.fnum(v) is not None else f.MISSING}%"
                                 for t, v in f.d(shares).items() if v is not None))
    lines.append("")
    for n in f.lst(doc.get("notes")):
        lines.append(f"> {md.inline(n)}")
    lines += ["", "## Method", ""] + [f"- {md.inline(x, True)}" for x in _method_lines(doc)] + [""]
    lines += [f"## One-to-one pairs ({len(pairs)}" + (f", the best {SHOWN} shown" if len(pairs) > SHOWN else "")
              + ")", ""]
    lines += md.table([md.inline(h) for h in _head(parts)], [[md.inline(c) for c in _row(m, parts)]
                                                             for m in pairs[:SHOWN]])
    return "\n".join(lines)


def render_html(doc: dict[str, Any]) -> str:
    doc = f.d(doc)
    summary, parts = f.d(doc.get("summary")), _parts(doc)
    pairs = _pairs(doc)
    e = escape
    body = [f"<header><div class='eyebrow'>Feature matches · {e(str(doc.get('schema_version')))}</div>"
            "<h1>Feature matches</h1>"
            f"<div class='meta'>left: {e(_side(f.d(doc.get('left'))))}<br>right: {e(_side(f.d(doc.get('right'))))}"
            f"<br>{e(f.num(summary.get('pairs')))} candidate pairs · {e(f.num(summary.get('one_to_one_pairs')))} "
            f"one-to-one · {e(f.num(summary.get('pairs_p_below_alpha')))} with p below alpha</div></header>"]
    notes = f.lst(doc.get("notes"))
    if notes:
        body.append("<div class='box note'><b>Notes</b><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes)
                    + "</ul></div>")
    body.append("<div class='panel'><h2>Method</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in _method_lines(doc))
                + "</ul></div>")
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _row(m, parts)) + "</tr>" for m in pairs[:SHOWN])
    body.append(f"<div class='panel'><h2>One-to-one pairs ({len(pairs)}"
                + (f", the best {SHOWN} shown" if len(pairs) > SHOWN else "") + ")</h2><table><thead><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in _head(parts)) + f"</tr></thead><tbody>{rows}</tbody></table></div>")
    return theme.page("Feature matches", "".join(body))
