"""``export-attribution-graph``: a report's features and the criterion as a graph (JSON, and an HTML view).

Nodes: the criterion, and every card (feature id, layer, tier, direction, label, importance). Causal edges
run from a feature to the criterion for each intervention kind with held-out evidence: the signed
effect, its CI, the controls' 95th percentile and whether it beat them. Association edges (for cards
without causal evidence) carry the held-out association effect. With similarity edges, features are
linked to their most similar other features of the same report by fingerprint (``evidence.match``,
p-values under its permutation null; only pairs with p below alpha).
"""

from __future__ import annotations

from html import escape
from typing import Any

from interp_lab.report import _card_text as ct
from interp_lab.report import _format as f

GRAPH = "interp-lab.attribution_graph.v1"
CRITERION = "criterion"


def attribution_graph(report: dict[str, Any], *, similarity: bool = False, k: int = 3, alpha: float = 0.05,
                      seed: int = 0) -> dict[str, Any]:
    cards = ct.cards(report)
    nodes: list[dict[str, Any]] = [{"id": CRITERION, "kind": "criterion", "label": report.get("criterion")}]
    edges: list[dict[str, Any]] = []
    for c in cards:
        nodes.append({"id": c["feature_id"], "kind": "feature", "layer": c.get("layer"), "rank": c.get("rank"),
                      "tier": c.get("evidence_tier"), "direction": c.get("direction"), "label": c.get("label"),
                      "importance": c.get("importance")})
        kinds = [(name, kd) for name, kd in ct.causal_kinds(c) if "mean_effect" in kd]
        for name, kd in kinds:
            ctl = f.d(kd.get("controls"))
            edges.append({"source": c["feature_id"], "target": CRITERION, "kind": "causal", "intervention": name,
                          "effect": kd.get("mean_effect"), "ci": kd.get("ci"), "n": kd.get("n"),
                          "controls_threshold": ctl.get("threshold"), "strong": bool(kd.get("strong_causal"))})
        if not kinds:
            held = ct.heldout(c)
            if held.get("effect") is not None:
                edges.append({"source": c["feature_id"], "target": CRITERION, "kind": "association",
                              "effect": held.get("effect"), "ci": held.get("effect_ci"),
                              "strong": bool(held.get("ci_excludes_zero"))})
    method: dict[str, Any] = {"causal": "one edge per intervention kind with held-out records (signed effect: "
                                        "positive promotes the criterion)",
                              "association": "cards without intervention records: their held-out association"}
    if similarity and len(cards) > 1:
        edges += _similarity_edges(cards, k, alpha, seed, method)
    return {"schema_version": GRAPH, "criterion": report.get("criterion"), "model": report.get("model"),
            "method": method, "nodes": nodes, "edges": edges}


def _similarity_edges(cards: list[dict[str, Any]], k: int, alpha: float, seed: int,
                      method: dict[str, Any]) -> list[dict[str, Any]]:
    from interp_lab.errors import UsageError
    from interp_lab.evidence.fingerprint import feature_set
    from interp_lab.evidence.match import MatchSettings, match

    fs, _ = feature_set(cards, "report")
    try:
        # k + 1: each feature's best match is itself
        got = match(fs, fs, MatchSettings(k=min(k + 1, len(cards)), null_pairs=max(2000, 20 * len(cards)),
                                          alpha=alpha, seed=seed))
    except UsageError as exc:
        method["similarity"] = f"not computed: {exc}"
        return []
    method["similarity"] = {"weights": got["method"]["weights"], "null_model": got["method"]["null_model"],
                            "kept": f"each feature's {k} most similar others with p < {alpha}"}
    seen, out = set(), []
    for m in got["matches"]:
        a, b = m["left_feature"], m["right_feature"]
        if a == b or m["p_value"] >= alpha or (b, a) in seen:
            continue
        seen.add((a, b))
        out.append({"source": a, "target": b, "kind": "similarity", "score": m["score"], "p_value": m["p_value"],
                    "components": m["components"]})
    return out


def render_graph_html(graph: dict[str, Any]) -> str:
    """An SVG view: features in columns by layer, the criterion on the right; edge width by |effect|,
    colour by sign (promotes blue, suppresses red), dashed when not beyond the controls."""
    from interp_lab.report import _theme as theme

    feats = [n for n in graph["nodes"] if n["kind"] == "feature"]
    layers = sorted({n.get("layer") if n.get("layer") is not None else -1 for n in feats})
    col = {layer: i for i, layer in enumerate(layers)}
    per_col: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    gap_x, gap_y, x0, y0 = 170.0, 56.0, 90.0, 60.0
    for n in sorted(feats, key=lambda n: (n.get("rank") or 0)):
        c = col[n.get("layer") if n.get("layer") is not None else -1]
        r = per_col.get(c, 0)
        per_col[c] = r + 1
        pos[n["id"]] = (x0 + c * gap_x, y0 + r * gap_y)
    rows = max(per_col.values(), default=1)
    width = x0 + len(layers) * gap_x + 200
    height = y0 + rows * gap_y + 40
    pos[CRITERION] = (width - 110, y0 + (rows - 1) * gap_y / 2)
    effects = [abs(float(e["effect"])) for e in graph["edges"] if e.get("effect") is not None]
    top = max(effects, default=1.0) or 1.0
    svg = []
    for e in graph["edges"]:
        (x1, y1), (x2, y2) = pos.get(e["source"]), pos.get(e["target"])
        if e["kind"] == "similarity":
            svg.append(f"<path d='M{x1:.0f},{y1:.0f} C{x1 + 60:.0f},{y1 - 30:.0f} {x2 - 60:.0f},{y2 - 30:.0f} "
                       f"{x2:.0f},{y2:.0f}' class='sim'><title>{escape(e['source'])} ~ {escape(e['target'])}: "
                       f"score {f.num(e['score'])}, p {f.pval(e['p_value'])}</title></path>")
            continue
        eff = float(e.get("effect") or 0.0)
        w = 1.0 + 5.0 * abs(eff) / top
        cls = ("pos" if eff >= 0 else "neg") + ("" if e.get("strong") else " weak")
        what = e.get("intervention") or "association"
        svg.append(f"<line x1='{x1:.0f}' y1='{y1:.0f}' x2='{x2:.0f}' y2='{y2:.0f}' class='{cls}' "
                   f"stroke-width='{w:.1f}'><title>{escape(e['source'])} → criterion, {escape(what)}: "
                   f"{f.signed(eff)} {escape(f.ci(e.get('ci')))}</title></line>")
    for n in graph["nodes"]:
        x, y = pos[n["id"]]
        tier = n.get("tier") or "criterion"
        label = n["id"] if n["kind"] == "feature" else "criterion"
        tip = escape(str(n.get("label") or n["id"]))
        svg.append(f"<g class='node {escape(tier)}'><circle cx='{x:.0f}' cy='{y:.0f}' r='9'><title>{tip}</title>"
                   f"</circle><text x='{x:.0f}' y='{y + 24:.0f}'>{escape(label)}</text></g>")
    for layer, c in col.items():
        svg.append(f"<text class='axis' x='{x0 + c * gap_x:.0f}' y='24'>{'layer ' + str(layer) if layer >= 0 else ''}"
                   "</text>")
    style = ("svg{background:#fff;border:1px solid #ddd}line.pos{stroke:#2f6fb0}line.neg{stroke:#c0392b}"
             "line.weak{stroke-dasharray:5 4;opacity:.6}path.sim{fill:none;stroke:#999;stroke-dasharray:2 3}"
             "circle{fill:#fff;stroke:#333;stroke-width:2}.causal circle{fill:#2f6fb0}.held_out circle{fill:#9cc3e6}"
             ".criterion circle{fill:#f5b041}text{font:12px sans-serif;text-anchor:middle}"
             "text.axis{fill:#666}")
    title = escape(f"{graph.get('criterion') or ''} — attribution graph")
    body = (f"<header><h1>{title}</h1><div class='meta'>model {escape(str(graph.get('model') or '-'))} · "
            f"{len(graph['nodes']) - 1} features · {len(graph['edges'])} edges</div></header>"
            f"<svg width='{width:.0f}' height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}'>{''.join(svg)}</svg>")
    return theme.page(title, body, style)
