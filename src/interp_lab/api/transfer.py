"""``interp-lab transfer``: do matched features move the same criterion in the other model?

For the top matched pairs of a matches.json (one-to-one pairs by score), the right feature is edited in
the right model and the left report's criterion measured on held-out prompts, with controls (evidence.md
rule 7). When the right report was made on the same criterion and tested that feature, its intervention
evidence is that measurement (the same held-out prompts, the same controls) and is read from it;
otherwise the interventions run here. A pair *transfers* when the right feature's effect is
``strong_causal`` (settings.causal_rule of the report: beyond its controls after Benjamini-Hochberg, with a
paired lower bound above zero) and has the sign of the left feature's effect (promotes / suppresses);
features tested here are tested one-sided in the direction of the left feature's effect. The base rate,
the share of all the right report's tested cards that would pass the same test against each left feature,
says what a match adds over picking any card.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interp_lab import defaults
from interp_lab.errors import InputError, UsageError
from interp_lab.report import _format as fmt
from interp_lab.report import mdtext as md
from interp_lab.schemas.feature_id import kind_of

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


def _report(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    from interp_lab.api.match import _read_report, _report_file

    p = _report_file(Path(path))
    if not p.exists():
        raise InputError(str(p), "file not found")
    return _read_report(p), p.parent


def _json_file(path: str | os.PathLike, name: str, type_: Any = Any) -> Any:
    """``name`` (or the file ``name`` in the directory ``path``) decoded as ``type_``, as plain objects;
    errors name the file."""
    import msgspec

    p = Path(path)
    p = p / name if p.is_dir() else p
    if not p.exists():
        raise InputError(str(p), "file not found")
    try:
        return msgspec.to_builtins(msgspec.json.decode(p.read_bytes(), type=type_))
    except msgspec.ValidationError as exc:
        raise InputError(str(p), f"not a {name} ({exc})") from None
    except msgspec.DecodeError as exc:
        raise InputError(str(p), f"malformed JSON ({exc})") from None


def _matches(path: str | os.PathLike) -> dict[str, Any]:
    from interp_lab.schemas.reports import MatchesFile

    return _json_file(path, "matches.json", MatchesFile)


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


def transfer(matches: str | os.PathLike, left: str | os.PathLike, right: str | os.PathLike, *,
             out: str | os.PathLike | None = None, top: int = 5, criterion: str | None = None,
             model: str | None = None, controls: int = defaults.CONTROLS, seed: int = 0,
             formats: tuple[str, ...] = ("json", "md")) -> dict[str, Any]:
    """Test the top ``top`` matched pairs of ``matches`` for causal transfer from ``left`` to ``right``.

    ``criterion``: the spec to measure when interventions must run here (default: the left report's
    criterion text, which compiles as a semantic criterion); ``model``: the right model (default: the one
    the right report names). With ``out``, writes transfer.json and transfer.md there, both or neither."""
    from interp_lab.evidence.causal import normalize_criterion

    if top < 1:
        raise UsageError("--top must be at least 1")
    doc = _matches(matches)
    lrep, _ = _report(left)
    rrep, rdir = _report(right)
    crit = lrep["criterion"]
    same = normalize_criterion(rrep["criterion"]) == normalize_criterion(crit)
    lcards = {c["feature_id"]: c for c in lrep["cards"]}
    rcards = {c["feature_id"]: c for c in rrep["cards"]}
    pairs = top_pairs(doc, top)
    missing = [m["left_feature"] for m in pairs if m["left_feature"] not in lcards]
    if missing:
        raise InputError(str(left), f"the matches name left features the report has no card for: {missing[:3]}")
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
    measured = {fid: rcards[fid]["causal"] for fid in rcards if same and rcards[fid].get("causal")}
    ran = None
    if todo:
        measured.update(_run_here(todo, rrep, rdir, criterion or crit, model, controls, seed, same, claims))
        ran = {"features": todo, "criterion": criterion or crit}
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
        entry.update(source=_effect(skind, s), target=None if tk is None else _effect(*tk), transfers=ok, why=why)
        table.append(entry)
    base = _base_rate([r["source"] for r in rows if r["source"] is not None and r["source"][1].get("strong_causal")],
                      measured)
    tested = [e for e in table if e["transfers"] is not None]  # pairs whose source is strong_causal
    result = {
        "schema_version": "interp-lab.transfer.v1",
        "criterion": crit,
        "left": {"model": lrep.get("model"), "report": str(left)},
        "right": {"model": rrep.get("model"), "report": str(right), "same_criterion": same},
        "method": {
            "pairs": f"the {top} best one-to-one pairs of the matches by score (then the best pairs of unused "
                     "features)",
            "source_effect": "the left feature's strongest intervention kind on its own model (strong_causal "
                             "first, then |effect|) among the families of edits the matched feature was tested "
                             "with; signed: positive = the feature promotes the criterion",
            "target_effect": "the matched right feature's strongest kind of the same family (removing: ablate, "
                             "mean_ablate; adding: steer) on the right model's held-out prompts, with its "
                             "controls' 95th percentile",
            "transfers": "target strong_causal (the right report's settings.causal_rule; features tested here: "
                         "one-sided in the direction of the left feature's effect, Benjamini-Hochberg over the "
                         "features tested here) with the sign of the source effect; not tested (null) when the "
                         "source itself is not strong_causal",
            "measured": "read from the right report's own interventions (same criterion, same held-out prompts "
                        "and controls)" if ran is None else
                        f"interventions run here on {len(todo)} feature(s); the rest read from the right report",
            "base_rate": "over every tested card of the right report, the share that passes the same test "
                         "against each strong_causal left feature (mean over those pairs)",
        },
        "summary": {"pairs": len(table), "tested": len(tested), "transfer": sum(bool(e["transfers"]) for e in tested),
                    "do_not_transfer": sum(e["transfers"] is False for e in tested), "base_rate": base},
        "ran_here": ran,
        "pairs": table,
    }
    if out is not None:
        result["paths"] = {k: str(v) for k, v in write_transfer(result, out, formats).items()}
    return result


def _effect(kind: str, ev: dict[str, Any]) -> dict[str, Any]:
    ctl = ev.get("controls") or {}
    return {"kind": kind, "mean_effect": ev.get("mean_effect"), "ci": ev.get("ci"), "n": ev.get("n"),
            "strength": ev.get("strength"), "controls_p95": ctl.get("threshold"), "controls_n": ctl.get("n"),
            "strong_causal": bool(ev.get("strong_causal"))}


def _base_rate(sources: list[tuple[str, dict[str, Any]]], measured: dict[str, dict[str, Any]]) -> float | None:
    """Mean over the source kinds of the share of the right side's measured features that would transfer."""
    if not sources or not measured:
        return None
    shares = []
    for kind, s in sources:
        hits = [verdict(s, None if (tk := best_kind(c, family(kind))) is None else tk[1])[0] for c in measured.values()]
        shares.append(sum(hits) / len(hits))
    return round(sum(shares) / len(shares), 4)


def _run_here(ids: list[str], rrep: dict[str, Any], rdir: Path, criterion: str, model: str | None, controls: int,
              seed: int, same: bool, claims: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Causal evidence for ``ids`` on the right model, measured here with controls, each tested in the
    direction ``claims`` gives it (the left feature's)."""
    from interp_lab.api.interventions import intervene
    from interp_lab.interventions.settings import InterventionSettings

    name = model or rrep.get("model")
    if not name:
        raise UsageError("the right report names no model: give --model")
    directions = rdir / "directions.safetensors"
    prompts = rdir / "prompts.jsonl" if same and (rdir / "prompts.jsonl").exists() else None
    kinds = tuple(dict.fromkeys(k for f in ids for k in (("mean_ablate", "steer") if kind_of(f) in ("N", "R")
                                                          else ("ablate", "steer"))))
    res = intervene(name, criterion, features=ids, directions=str(directions) if directions.exists() else None,
                    prompts=None if prompts is None else str(prompts),
                    settings=InterventionSettings(kinds=kinds, n_controls=controls, seed=seed),
                    claims_for=claims)
    return {fid: ev["kinds"] for fid, ev in res.evidence.items() if fid in ids}


def write_transfer(doc: dict[str, Any], out: str | os.PathLike, formats: tuple[str, ...] = ("json", "md")):
    from interp_lab.api.match import _write_beside

    return _write_beside(out, "transfer.json", {k: v for k, v in doc.items() if k != "paths"},
                         {"md": render_markdown} if "md" in formats else {}, with_json="json" in formats)


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


def distinct_pairs(docs: list[dict[str, Any]]) -> dict[str, int]:
    """The tested pairs counted once however many ways they were tested (the same two features of one
    criterion matched and tested from each model's side): ``tested``, ``transfer`` (every way it was
    tested), ``one_way`` (one way but not the other), ``do_not_transfer`` (no way)."""
    from interp_lab.evidence.causal import normalize_criterion

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


def transfer_table(transfers: list[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """One table over several transfer.json files (a criterion each): table.md and table.json in ``out``,
    with the counts of pairs that transfer and that do not."""
    docs = []
    for t in transfers:
        docs.append(_json_file(t, "transfer.json"))
        if not isinstance(docs[-1], dict) or docs[-1].get("schema_version") != "interp-lab.transfer.v1":
            raise InputError(str(t), "not a transfer.json", field="schema_version")
    rows = [{"criterion": d["criterion"], "left_model": d["left"]["model"], "right_model": d["right"]["model"],
             **e} for d in docs for e in d["pairs"]]
    summary: dict[str, Any] = {}
    for t, d in zip(transfers, docs):
        name = d["criterion"] + f" ({d['left']['model']} → {d['right']['model']})"
        summary[name if name not in summary else f"{name} [{t}]"] = d["summary"]  # two files of one criterion
    total = {k: sum(d["summary"][k] for d in docs) for k in ("tested", "transfer", "do_not_transfer")}
    distinct = distinct_pairs(docs)
    doc = {"schema_version": "interp-lab.transfer_table.v1",
           "summary": {"by_criterion": summary, "total": total, "distinct_pairs": distinct}, "rows": rows}

    def render(d: dict[str, Any]) -> str:
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

    from interp_lab.api.match import _write_beside

    _write_beside(Path(out) / "table.json", "table.json", doc, {"md": render})
    return doc
