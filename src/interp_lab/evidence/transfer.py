"""Causal transfer between matched features: which pairs to test, on which edits, and the verdict.

A pair *transfers* when the right feature's effect is ``strong_causal`` (the report's settings.causal_rule:
beyond its controls after Benjamini-Hochberg, with a paired lower bound above zero) and has the sign of the
left feature's effect. Edits compare within a family: removing (ablate, mean_ablate, clamp_down, patch) or
adding (steer, clamp_up). The base rate, the share of all the right report's tested cards that would pass
the same test against each left feature, says what a match adds over picking any card. ``api/transfer.py``
reads the files and runs the interventions; ``report/transfer.py`` renders the documents.
"""

from __future__ import annotations

from typing import Any, Optional, TypedDict

from interp_lab.evidence.causal import normalize_criterion


class Effect(TypedDict):
    """One side's measured edit of a transfer pair."""

    kind: str  # the intervention kind (same family on both sides: removing or adding)
    mean_effect: Optional[float]  # held-out, signed: positive promotes the criterion
    ci: Optional[list[float]]  # its 95% bootstrap interval
    n: Optional[int]  # prompts
    strength: Optional[float]  # steering strength, when steered
    controls_p95: Optional[float]  # the controls' 95th percentile in the tested direction
    controls_n: Optional[int]
    strong_causal: bool


class TransferPair(TypedDict, total=False):
    """A row of transfer.json's ``pairs``."""

    left_feature: str
    right_feature: str
    score: float  # the match score
    p_value: float  # the match's p-value under the permutation null
    p_value_best_of: Optional[float]
    one_to_one: bool
    source: Effect  # the left feature's edit on its own model
    target: Optional[Effect]  # the matched feature's edit of the same family on the right model
    transfers: Optional[bool]  # None: not tested (the source is not strong_causal)
    why: str


class TransferDocument(TypedDict, total=False):
    """transfer.json (``interp-lab transfer``; schema interp-lab.transfer.v1), what ``transfer()`` returns."""

    schema_version: str
    criterion: str
    left: dict[str, Any]  # model, report
    right: dict[str, Any]  # model, report, same_criterion
    method: dict[str, str]  # what each field means (``method()``)
    summary: dict[str, Any]  # pairs, tested, transfer, do_not_transfer, base_rate
    ran_here: Optional[dict[str, Any]]  # features and criterion measured here, None: all read from the report
    pairs: list[TransferPair]
    paths: dict[str, str]  # the files written (not in transfer.json)


class TransferTable(TypedDict):
    """table.json (``interp-lab transfer-table``), what ``transfer_table()`` returns."""

    schema_version: str
    summary: dict[str, Any]  # by_criterion (each transfer.json's summary), total, distinct_pairs
    rows: list[dict[str, Any]]  # every pair with criterion, left_model and right_model

ABLATION = ("ablate", "mean_ablate", "clamp_down", "patch")


def family(kind: str) -> str:
    """Edits that remove a feature (ablation-like) against those that add it (steer, clamp_up)."""
    return "remove" if kind in ABLATION else "add"


def best_kind(causal: dict[str, Any], families: str | set[str] | None = None) -> tuple[str, dict[str, Any]] | None:
    """The strongest intervention kind of a card's causal evidence (``strong_causal`` first, then |effect|),
    among the kinds of ``families`` (one family or a set) when given."""
    fams = {families} if isinstance(families, str) else families
    kinds = [(k, v) for k, v in (causal or {}).items()
             if isinstance(v, dict) and v.get("mean_effect") is not None and (fams is None or family(k) in fams)]
    if not kinds:
        return None
    return max(kinds, key=lambda kv: (bool(kv[1].get("strong_causal")), abs(float(kv[1]["mean_effect"]))))


def verdict(source: dict[str, Any], target: dict[str, Any] | None) -> tuple[bool, str]:
    """(transfers, why) for a source kind's evidence and the matched feature's evidence of the same family."""
    if target is None:
        return False, "no intervention of that family on the matched feature"
    s, t = float(source["mean_effect"]), float(target["mean_effect"])
    if not target.get("strong_causal"):
        reasons = "; ".join(target.get("reasons") or []) or "not beyond its controls"
        return False, f"not strong_causal ({reasons})"
    if (s > 0) != (t > 0):
        return False, "strong_causal with the opposite sign"
    return True, "strong_causal with the same sign"


def top_pairs(matches: dict[str, Any], top: int) -> list[dict[str, Any]]:
    """The ``top`` best one-to-one pairs; when there are fewer, the best remaining pairs whose left and
    right features are not used yet."""
    rows = sorted(matches["matches"], key=lambda m: (not m["one_to_one"], -m["score"], m["left_feature"],
                                                     m["right_feature"]))
    out, used_l, used_r = [], set(), set()
    for m in rows:
        if len(out) == top:
            break
        if m["left_feature"] in used_l or m["right_feature"] in used_r:
            continue
        out.append(m)
        used_l.add(m["left_feature"])
        used_r.add(m["right_feature"])
    return out


def plan(pairs: list[dict[str, Any]], lcards: dict[str, Any], rcards: dict[str, Any], same: bool
         ) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """For each pair, the left feature's edit to compare (``source``: its strongest kind, among the families
    the right report tested the matched feature with when it did); the right features to measure here
    (``todo``: no edit of the source's family in the right report) and the direction each is claimed in."""
    rows: list[dict[str, Any]] = []
    todo: list[str] = []
    claims: dict[str, int] = {}
    for m in pairs:
        lcausal = lcards[m["left_feature"]].get("causal") or {}
        src = best_kind(lcausal)
        if src is None:
            rows.append({"pair": m, "source": None})
            continue
        have = (rcards.get(m["right_feature"], {}).get("causal") or {}) if same else {}
        families = {family(k) for k in have}
        if family(src[0]) not in families:
            # compare on a family of edits the right report did run, else run the source's family here
            alt = best_kind(lcausal, families) if families else None
            if alt is not None:
                src = alt
            elif m["right_feature"] not in todo:
                todo.append(m["right_feature"])
                # the claim tested on the right model: the left feature's direction
                claims[m["right_feature"]] = 1 if float(src[1]["mean_effect"]) >= 0 else -1
        rows.append({"pair": m, "source": src})
    return rows, todo, claims


def judge(rows: list[dict[str, Any]], measured: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], float | None]:
    """The table of pairs with their effects and verdicts, and the base rate, given the right features'
    causal evidence ``measured`` (by feature id, by kind)."""
    table = []
    for r in rows:
        m = r["pair"]
        entry: dict[str, Any] = {"left_feature": m["left_feature"], "right_feature": m["right_feature"],
                                 "score": m["score"], "p_value": m["p_value"],
                                 "p_value_best_of": m.get("p_value_best_of"), "one_to_one": m["one_to_one"]}
        if r["source"] is None:
            entry.update(transfers=None, why="the left feature has no intervention evidence")
            table.append(entry)
            continue
        skind, s = r["source"]
        tk = best_kind(measured.get(m["right_feature"]) or {}, family(skind))
        ok, why = verdict(s, None if tk is None else tk[1])
        if not s.get("strong_causal"):
            ok, why = None, "nothing to transfer: the left feature is not strong_causal on its own model"
        entry.update(source=effect_summary(skind, s), target=None if tk is None else effect_summary(*tk),
                     transfers=ok, why=why)
        table.append(entry)
    base = base_rate([r["source"] for r in rows if r["source"] is not None and r["source"][1].get("strong_causal")],
                     measured)
    return table, base


def method(top: int, measured_here: int | None) -> dict[str, str]:
    """What each field of a transfer document means, as the document says it (``measured_here``: how many
    right features were measured here, None when all were read from the right report)."""
    return {
        "pairs": f"the {top} best one-to-one pairs of the matches by score (then the best pairs of unused features)",
        "source_effect": "the left feature's strongest intervention kind on its own model (strong_causal first, "
                         "then |effect|) among the families of edits the matched feature was tested with; signed: "
                         "positive = the feature promotes the criterion",
        "target_effect": "the matched right feature's strongest kind of the same family (removing: ablate, "
                         "mean_ablate; adding: steer) on the right model's held-out prompts, with its controls' "
                         "95th percentile",
        "transfers": "target strong_causal (the right report's settings.causal_rule; features tested here: "
                     "one-sided in the direction of the left feature's effect, Benjamini-Hochberg over the "
                     "features tested here) with the sign of the source effect; not tested (null) when the "
                     "source itself is not strong_causal",
        "measured": "read from the right report's own interventions (same criterion, same held-out prompts and "
                    "controls)" if measured_here is None else
                    f"interventions run here on {measured_here} feature(s); the rest read from the right report",
        "base_rate": "over every tested card of the right report, the share that passes the same test against "
                     "each strong_causal left feature (mean over those pairs)",
    }


def effect_summary(kind: str, ev: dict[str, Any]) -> dict[str, Any]:
    ctl = ev.get("controls") or {}
    return {"kind": kind, "mean_effect": ev.get("mean_effect"), "ci": ev.get("ci"), "n": ev.get("n"),
            "strength": ev.get("strength"), "controls_p95": ctl.get("threshold"), "controls_n": ctl.get("n"),
            "strong_causal": bool(ev.get("strong_causal"))}


def base_rate(sources: list[tuple[str, dict[str, Any]]], measured: dict[str, dict[str, Any]]) -> float | None:
    """Mean over the source kinds of the share of the right side's measured features that would transfer."""
    if not sources or not measured:
        return None
    shares = []
    for kind, s in sources:
        hits = [verdict(s, None if (tk := best_kind(c, family(kind))) is None else tk[1])[0] for c in measured.values()]
        shares.append(sum(hits) / len(hits))
    return round(sum(shares) / len(shares), 4)


def distinct_pairs(docs: list[dict[str, Any]]) -> dict[str, int]:
    """The tested pairs counted once however many ways they were tested (the same two features of one
    criterion matched and tested from each model's side): ``tested``, ``transfer`` (every way it was
    tested), ``one_way`` (one way but not the other), ``do_not_transfer`` (no way)."""
    seen: dict[tuple[Any, ...], list[bool]] = {}
    for d in docs:
        for e in d["pairs"]:
            if e["transfers"] is None:
                continue
            ends = frozenset({(d["left"]["model"], e["left_feature"]), (d["right"]["model"], e["right_feature"])})
            seen.setdefault((normalize_criterion(d["criterion"]), ends), []).append(bool(e["transfers"]))
    verdicts = list(seen.values())
    return {"tested": len(verdicts), "transfer": sum(all(v) for v in verdicts),
            "one_way": sum(any(v) and not all(v) for v in verdicts),
            "do_not_transfer": sum(not any(v) for v in verdicts)}


