"""``interp-lab transfer``: do matched features move the same criterion in the other model?

For the top matched pairs of a matches.json (one-to-one pairs by score), the right feature is edited in
the right model and the left report's criterion measured on held-out prompts, with controls (evidence.md
rule 7). When the right report was made on the same criterion and tested that feature, its intervention
evidence is that measurement (the same held-out prompts, the same controls) and is read from it;
otherwise the interventions run here, one-sided in the direction of the left feature's effect. Which pairs,
which edits and the verdict are ``evidence/transfer.py``'s; the documents are rendered by
``report/transfer.py``. ``transfer-table`` puts several transfer documents in one table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_lab import defaults
from interp_lab.api.registry import command
from interp_lab.errors import InputError, UsageError
from interp_lab.evidence.transfer import (
    TransferDocument,
    TransferTable,
    distinct_pairs,
    judge,
    method,
    plan,
    top_pairs,
)
from interp_lab.report.transfer import render_markdown, render_table
from interp_lab.schemas.command import Progress, option
from interp_lab.schemas.feature_id import kind_of


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


@dataclass(kw_only=True)
class TransferOptions:
    matches: Path = option(help="matches.json of the two reports.")
    left: Path = option(help="The left report (its features' own causal evidence).")
    right: Path = option(help="The right report (the model the matched features live in).")
    out: Path | None = option(None, "Directory for transfer.json and transfer.md.", required=True)
    top: int = option(5, "Matched pairs tested (the best by score).", flag="--top-k", deprecated=("--top",), min=1)
    criterion: str | None = option(None, "Spec measured when interventions run here (default: the left report's "
                                         "criterion).")
    model: str | None = option(None, "The right model (default: the right report's).")
    controls: int = option(defaults.CONTROLS, "Random controls per feature and kind.", min=1)
    seed: int = option(0)
    formats: tuple[str, ...] = option(("json", "md"), "Files written in --out.", cli=False)


@command("transfer", options=TransferOptions, result=TransferDocument, group="cross-model", step=True, log=True,
         positional=("matches", "left", "right"),
         help="Do matched features move the same criterion in the other model? (edits with controls)")
def transfer(o: TransferOptions, progress: Progress) -> TransferDocument:
    """Test the top ``top`` matched pairs of ``matches`` for causal transfer from ``left`` to ``right``.

    ``criterion``: the spec to measure when interventions must run here (default: the left report's
    criterion text, which compiles as a semantic criterion); ``model``: the right model (default: the one
    the right report names). With ``out``, writes transfer.json and transfer.md there, both or neither.
    Returns the transfer document (with ``paths`` when written)."""
    from interp_lab.evidence.causal import normalize_criterion

    if o.top < 1:
        raise UsageError("--top-k must be at least 1")
    doc = _matches(o.matches)
    lrep, _ = _report(o.left)
    rrep, rdir = _report(o.right)
    crit = lrep["criterion"]
    same = normalize_criterion(rrep["criterion"]) == normalize_criterion(crit)
    lcards = {c["feature_id"]: c for c in lrep["cards"]}
    rcards = {c["feature_id"]: c for c in rrep["cards"]}
    pairs = top_pairs(doc, o.top)
    missing = [m["left_feature"] for m in pairs if m["left_feature"] not in lcards]
    if missing:
        raise InputError(str(o.left), f"the matches name left features the report has no card for: {missing[:3]}")
    rows, todo, claims = plan(pairs, lcards, rcards, same)
    measured = {fid: rcards[fid]["causal"] for fid in rcards if same and rcards[fid].get("causal")}
    ran = None
    if todo:
        measured.update(_run_here(todo, rrep, rdir, o.criterion or crit, o.model, o.controls, o.seed, same, claims,
                                  progress))
        ran = {"features": todo, "criterion": o.criterion or crit}
    table, base = judge(rows, measured)
    tested = [e for e in table if e["transfers"] is not None]  # pairs whose source is strong_causal
    result: TransferDocument = {
        "schema_version": "interp-lab.transfer.v1",
        "criterion": crit,
        "left": {"model": lrep.get("model"), "report": str(o.left)},
        "right": {"model": rrep.get("model"), "report": str(o.right), "same_criterion": same},
        "method": method(o.top, None if ran is None else len(todo)),
        "summary": {"pairs": len(table), "tested": len(tested), "transfer": sum(bool(e["transfers"]) for e in tested),
                    "do_not_transfer": sum(e["transfers"] is False for e in tested), "base_rate": base},
        "ran_here": ran,
        "pairs": table,
    }
    if o.out is not None:
        result["paths"] = {k: str(v) for k, v in write_transfer(result, o.out, o.formats).items()}
    return result


def _run_here(ids: list[str], rrep: dict[str, Any], rdir: Path, criterion: str, model: str | None, controls: int,
              seed: int, same: bool, claims: dict[str, int], progress: Progress) -> dict[str, dict[str, Any]]:
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
                    claims_for=claims, progress=progress)
    return {fid: ev["kinds"] for fid, ev in res.evidence.items() if fid in ids}


def write_transfer(doc: dict[str, Any], out: str | os.PathLike, formats: tuple[str, ...] = ("json", "md")):
    from interp_lab.api.match import _write_beside

    return _write_beside(out, "transfer.json", {k: v for k, v in doc.items() if k != "paths"},
                         {"md": render_markdown} if "md" in formats else {}, with_json="json" in formats)


@dataclass(kw_only=True)
class TransferTableOptions:
    transfers: list[Path] = option(help="transfer.json files (or their directories), a criterion each.",
                                   argument=True)
    out: Path = option(help="Directory for table.json and table.md.")


@command("transfer-table", options=TransferTableOptions, result=TransferTable, group="cross-model", step=True,
         positional=("transfers", "out"),
         help="One table over several transfer.json files: the pairs that transfer and that do not.")
def transfer_table(o: TransferTableOptions, progress: Progress) -> TransferTable:
    """One table over several transfer.json files (a criterion each): table.md and table.json in ``out``,
    with the counts of pairs that transfer and that do not."""
    transfers = o.transfers
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
    doc: TransferTable = {"schema_version": "interp-lab.transfer_table.v1",
           "summary": {"by_criterion": summary, "total": total, "distinct_pairs": distinct}, "rows": rows}

    from interp_lab.api.match import _write_beside

    _write_beside(Path(o.out) / "table.json", "table.json", doc, {"md": lambda d: render_table(d, docs)})
    return doc
