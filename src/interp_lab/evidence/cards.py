"""Importance, evidence tiers and the order of the cards (evidence.md, formats.md)."""

from __future__ import annotations

from typing import Any

TIERS = ("causal", "held_out", "discovery_only", "imported")
WEIGHTS = {"association": 0.4, "causal": 0.3, "stability": 0.15, "specificity": 0.15, "reported_causal": 1.0,
           "text_match": 1.0}
IMPORTANCE_DOC = {
    "weights": WEIGHTS,
    "formula": "weighted mean of the available components, each in [0, 1]; weights of missing components "
               "are dropped and the rest renormalized",
    "components": {
        "association": "held-out effect (Somers' D = 2*AUROC-1, or Spearman rho) in the discovery direction, "
                       "clipped at 0; times the share kept after covariate adjustment when covariates are given",
        "causal": "best intervention kind: max(0, 1 - p / 0.05), p its p-value against its controls "
                  "(settings.causal_rule: one-sided in the discovery direction, the larger over two control "
                  "families): 1 far beyond the controls, 0 at p = 0.05 and above (a null feature earns nothing 95% "
                  "of the time); 0 for a kind whose held-out effect has the other sign than the card's direction or a "
                  "steering edit beyond its side-effect KL budget; absent without controls",
        "stability": "top-k frequency by |effect| among the discovery candidates under bootstrap resampling of "
                     "the discovery rows; for features fitted on the discovery rows (contrast directions), "
                     "against the same candidates under resampling of the held-out rows (out of sample)",
        "specificity": "firing-rate and activation-mass selectivity on held-out rows, in the feature's direction",
        "reported_causal": "|causal_effects[criterion]| of a feature dump, capped at 1; used only when no other "
                           "component exists",
        "text_match": "an imported feature's description match to the criterion (text_match.score, clipped at 0); "
                      "used only when no other component exists",
    },
    "flags": "small_effect: a strong_causal kind moves the score by less than 5% of its baseline; "
             "controls_widened: a kind's control sampler widened its matching tolerance to find enough controls",
    "tiers": "causal: a strong_causal intervention kind whose effect has the card's direction; held_out: "
             "the held-out association's CI excludes zero in the discovery direction (and, with covariates, it is "
             "not flagged confounded); imported: a feature described by another source (Neuronpedia, Goodfire) "
             "and not measured here, ranked by text_match; else discovery_only",
    "ordering": "evidence tier (causal > held_out > discovery_only > imported), then features not flagged confounded, "
                "then importance, then feature_id",
}


def importance(components: dict[str, float | None]) -> tuple[float, dict[str, float | None]]:
    used = {k: v for k, v in components.items() if v is not None}
    total = sum(WEIGHTS[k] for k in used)
    value = sum(WEIGHTS[k] * float(v) for k, v in used.items()) / total if total else 0.0
    return round(value, 6), {k: (None if v is None else round(float(v), 6)) for k, v in components.items()}


def build_cards(features: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Order feature evidence into cards.

    ``features`` maps feature_id to a partial card: optional ``assoc``
    (from rank), ``causal`` (from causal), ``reported_causal``, and the
    descriptive fields (label, examples, fingerprint, provenance ...).
    """
    cards = []
    for fid, f in features.items():
        assoc = f.get("assoc")
        causal = (f.get("causal") or {}).get("kinds", {})
        flags = list(assoc["flags"]) if assoc else []
        if assoc is not None:
            direction = assoc["direction"]
        elif causal:
            strongest = [k for k in causal.values() if k["strong_causal"]] or list(causal.values())
            direction = max(strongest, key=lambda k: abs(k["mean_effect"] or 0.0))["direction"]
        elif f.get("reported_causal") is not None:
            direction = "promotes" if f["reported_causal"] >= 0 else "suppresses"
        else:
            direction = None
        if assoc is not None and causal:
            dirs = {k["direction"] for k in causal.values() if k["split"] == "heldout" and k["n"]}
            if dirs and dirs != {direction}:
                flags.append("causal_direction_differs")
        strong_kinds = [k for k in causal.values() if k["strong_causal"] and k["direction"] == direction]
        if strong_kinds and any(k.get("small_effect") for k in strong_kinds):
            flags.append("small_effect")
        if any((k.get("controls") or {}).get("tolerance_widened") for k in causal.values()):
            flags.append("controls_widened")
        # causal evidence counts for the direction the card claims, never against it
        scores = [k["causal_score"] if k["direction"] == direction else 0.0
                  for k in causal.values() if k.get("causal_score") is not None]
        comps: dict[str, float | None] = {
            "association": None if assoc is None else assoc["association_strength"],
            "causal": max(scores) if scores else None,
            "stability": None if assoc is None else assoc["stability"]["score"],
            "specificity": None if assoc is None else assoc["specificity"]["score"],
        }
        if all(v is None for v in comps.values()) and f.get("reported_causal") is not None:
            # a bare feature dump: its reported effect is the only evidence (no interval, no controls)
            comps = {"reported_causal": min(1.0, abs(float(f["reported_causal"])))}
        elif all(v is None for v in comps.values()) and f.get("text_match") is not None:
            comps = {"text_match": max(0.0, float(f["text_match"]["score"] or 0.0))}
        value, comps = importance(comps)
        # a causal tier needs a strong causal effect in the direction the card claims
        if strong_kinds:
            tier = "causal"
        elif assoc is not None and assoc["heldout_supported"]:
            tier = "held_out"
        elif assoc is None and not causal and f.get("text_match") is not None:
            tier = "imported"
        else:
            tier = "discovery_only"
        card: dict[str, Any] = {
            "feature_id": fid,
            "rank": 0,
            "importance": value,
            "importance_components": comps,
            "evidence_tier": tier,
            "direction": direction,
            "flags": sorted(set(flags)),
            "label": f.get("label"),
            "layer": f.get("layer"),
            "association": None if assoc is None else assoc["association"],
            "specificity": None if assoc is None else assoc["specificity"],
            "stability": None if assoc is None else assoc["stability"],
            "selected_on": None if assoc is None else assoc["selected_on"],
            "causal": causal or None,
            "reported_causal_effect": f.get("reported_causal"),
            "side_effects": (f.get("causal") or {}).get("side_effects"),
            "examples": f.get("examples", []),
            "fingerprint": f.get("fingerprint", {}),
            "provenance": f.get("provenance", {}),
        }
        for key in ("text_match", "neuronpedia"):  # from other sources: present only when they say something
            if f.get(key) is not None:
                card[key] = f[key]
        cards.append(card)
    cards.sort(key=lambda c: (TIERS.index(c["evidence_tier"]), "confounded" in c["flags"], -c["importance"],
                              c["feature_id"]))
    for i, c in enumerate(cards, start=1):
        c["rank"] = i
    return cards
