"""Intervention records as arrays, and their per-(edit, prompt) means (the input of ``evidence.causal``).

The signed effect of one row is ``sign(kind) * (intervention_score - baseline_score)``: positive means
the edited feature promotes the criterion, negative that it suppresses it; nothing is folded into an
absolute value. A *series* is one edit tested on many prompts: a feature (or one of its controls) under
one intervention kind at one strength; a control's series also names the feature it serves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from interp_lab.errors import InputError
from interp_lab.evidence.splits import HELDOUT, split_codes
from interp_lab.io.jsonl import read_jsonl
from interp_lab.schemas.records import SPLITS, InterventionRecord, intervention_sign

# control families of rule 7: a direction card must beat each family it has
FAMILY_OF = {"random_feature": "random", "random_direction": "random", "permuted_label": "permuted_label"}
FAMILIES = ("random", "permuted_label")


def _empty(dtype: Any) -> Any:
    return field(default_factory=lambda: np.zeros(0, dtype=dtype))


@dataclass
class InterventionTable:
    """Intervention rows as arrays (one entry per row)."""

    path: str
    feature_id: np.ndarray  # object
    kind: np.ndarray  # object
    strength: np.ndarray  # float, nan = none
    effect: np.ndarray  # signed promotion effect
    side_effect: np.ndarray  # float, nan = none
    baseline: np.ndarray  # baseline_score of the row (the scale an effect is read against)
    prompt_id: np.ndarray  # object
    split: np.ndarray  # int8 code
    control_type: np.ndarray  # object: None, random_feature, random_direction, permuted_label, placebo
    control_for: np.ndarray  # object: a feature_id, or "*" for every feature of the control's kind and strength
    score_kinds: list[str]
    models: list[str]
    sources: list[str]
    rows_read: int
    rows_other_criterion: int
    split_source: str
    lines: np.ndarray = _empty(np.int64)
    # control rows that name no control_for (the 0.2 form), read as controls for every feature ("*")
    control_for_implied: np.ndarray = _empty(bool)
    # metadata of 0.4 records (nan / None / -1 where a row does not carry it)
    for_strength: np.ndarray = _empty(np.float64)  # steering controls: the target strength they serve
    edit_norm: np.ndarray = _empty(np.float64)  # L2 norm of the edit at the edited position
    positive: np.ndarray = _empty(np.int8)  # the prompt's class: 1 positive, 0 negative, -1 not given
    matched_on: np.ndarray = _empty(object)
    match_tolerance: np.ndarray = _empty(np.float64)
    tolerance_widened: np.ndarray = _empty(bool)

    @property
    def controls_without_target(self) -> int:
        """How many control rows name no control_for (and serve every feature of their kind and strength)."""
        return int(self.control_for_implied.sum())

    @property
    def n(self) -> int:
        return len(self.effect)


def normalize_criterion(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .!?;:")


def load_interventions(path: str | os.PathLike, criterion: str | None, *, allow_mismatch: bool = False,
                       display: str | None = None) -> InterventionTable:
    """Read and validate intervention records; keep the rows about ``criterion``."""
    shown = display or str(path)
    try:
        return interventions_table(read_jsonl(path, InterventionRecord), criterion,
                                   allow_mismatch=allow_mismatch, name=shown)
    except InputError as exc:
        exc.path = shown
        raise


def interventions_from_dicts(rows: list[dict[str, Any]], criterion: str | None, name: str) -> InterventionTable:
    """An ``InterventionTable`` from in-memory rows (validated like a file)."""
    recs = ((i + 1, msgspec.convert(r, InterventionRecord)) for i, r in enumerate(rows))
    return interventions_table(recs, criterion, allow_mismatch=False, name=name)


def _num(value: Any) -> float:
    return np.nan if value is None else float(value)


def interventions_table(records: Iterable[tuple[int, InterventionRecord]], criterion: str | None, *,
                        allow_mismatch: bool, name: str) -> InterventionTable:
    want = normalize_criterion(criterion) if criterion else None
    same: dict[str, bool] = {}  # criterion text -> whether it names ``want`` (a file repeats one text)
    names = ("fid", "kind", "strength", "effect", "side", "base", "pid", "split", "ctype", "cfor", "implied", "line",
             "for_strength", "edit_norm", "positive", "matched_on", "tolerance", "widened")
    rows: list[tuple] = []
    score_kinds: set[str] = set()
    models: set[str] = set()
    sources: set[str] = set()
    read = other = 0
    for number, rec in records:
        read += 1
        if want and rec.criterion and not allow_mismatch:
            ok = same.get(rec.criterion)
            if ok is None:
                ok = same[rec.criterion] = normalize_criterion(rec.criterion) == want
            if not ok:
                other += 1
                continue
        meta = rec.metadata or {}
        sign = intervention_sign(rec.intervention, meta.get("direction"))
        ctype = rec.control_type
        pos = meta.get("positive")
        matched = meta.get("matched_on")
        rows.append((
            rec.feature_id, rec.intervention, _num(rec.strength), sign * (rec.intervention_score - rec.baseline_score),
            _num(rec.side_effect_score), rec.baseline_score, None if rec.prompt_id is None else str(rec.prompt_id),
            -1 if rec.split is None else SPLITS.index(rec.split), ctype, rec.control_for,
            ctype is not None and rec.control_for is None, number, _num(meta.get("for_strength")),
            _num(meta.get("edit_norm")), -1 if pos is None else int(bool(pos)),
            None if matched is None else str(matched), _num(meta.get("match_tolerance")),
            bool(meta.get("tolerance_widened"))))
        if meta.get("score_kind"):
            score_kinds.add(str(meta["score_kind"]))
        if rec.model:
            models.add(rec.model)
        if meta.get("source"):
            sources.add(str(meta["source"]))
    cols: dict[str, Any] = dict(zip(names, zip(*rows))) if rows else {k: () for k in names}
    pid = np.array(cols["pid"], dtype=object)
    # rows without a prompt_id are their own prompt (named by line) for splitting and resampling
    missing = np.array([p is None for p in pid], dtype=bool)
    if missing.any():
        pid[missing] = [f"line-{n}" for n in np.asarray(cols["line"], dtype=np.int64)[missing]]
    implied = np.asarray(cols["implied"], dtype=bool)
    control_for = np.array(cols["cfor"], dtype=object)
    control_for[implied] = "*"  # the 0.2 README's controls: control_type alone, for the whole file
    split = np.asarray(cols["split"], dtype=np.int8)
    need = split < 0
    source = "given"
    if need.any():
        split[need] = split_codes(pid[need], "rank")
        source = "hash" if need.all() else "given+hash"
    f64 = lambda k: np.asarray(cols[k], dtype=np.float64)  # noqa: E731
    return InterventionTable(
        path=name,
        feature_id=np.array(cols["fid"], dtype=object),
        kind=np.array(cols["kind"], dtype=object),
        strength=f64("strength"),
        effect=f64("effect"),
        side_effect=f64("side"),
        baseline=f64("base"),
        prompt_id=pid,
        split=split,
        control_type=np.array(cols["ctype"], dtype=object),
        control_for=control_for,
        score_kinds=sorted(score_kinds),
        models=sorted(models),
        sources=sorted(sources),
        rows_read=read,
        rows_other_criterion=other,
        split_source=source,
        lines=np.asarray(cols["line"], dtype=np.int64),
        control_for_implied=implied,
        for_strength=f64("for_strength"),
        edit_norm=f64("edit_norm"),
        positive=np.asarray(cols["positive"], dtype=np.int8),
        matched_on=np.array(cols["matched_on"], dtype=object),
        match_tolerance=f64("tolerance"),
        tolerance_widened=np.asarray(cols["widened"], dtype=bool),
    )


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, code per entry) of an object array of strings or None (None is a value of its own),
    in order of first appearance (pyarrow's dictionary encoding: no sort of Python strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(pa.array(values, type=pa.string()), null_encoding="encode")
    return np.array(enc.dictionary.to_pylist(), dtype=object), enc.indices.to_numpy(zero_copy_only=False)


@dataclass
class SeriesGrid:
    """Per series: who it is; per (series, prompt) pair: the mean over that prompt's rows.

    Pairs are sorted by series; ``indptr`` [series + 1] slices them. Target series use their held-out
    rows (all their rows when they have none held out: ``fallback``); controls use held-out rows only.
    """

    feature_id: np.ndarray  # [G] object
    kind: np.ndarray  # [G] object
    strength: np.ndarray  # [G] the row's strength (nan = none)
    serves_strength: np.ndarray  # [G] for_strength when given, else strength: the entry a control serves
    control_type: np.ndarray  # [G] object (None for a tested feature)
    control_for: np.ndarray  # [G] object
    fallback: np.ndarray  # [G] bool: a target series without held-out rows (all its rows used)
    implied: np.ndarray  # [G] bool: controls without control_for (0.2)
    matched_on: np.ndarray  # [G] object
    match_tolerance: np.ndarray  # [G]
    tolerance_widened: np.ndarray  # [G] bool
    indptr: np.ndarray  # [G + 1]
    prompt: np.ndarray  # [Q] prompt code
    effect: np.ndarray  # [Q]
    side: np.ndarray  # [Q] nan = none
    edit_sq: np.ndarray  # [Q] mean of edit_norm^2, nan = none
    baseline: np.ndarray  # [Q]
    prompts: np.ndarray  # [P] prompt ids
    positive: np.ndarray  # [P] int8: 1, 0, -1 unknown

    @property
    def size(self) -> int:
        return len(self.feature_id)

    def pairs(self, g: int) -> slice:
        return slice(int(self.indptr[g]), int(self.indptr[g + 1]))


def _pair_mean(inv: np.ndarray, values: np.ndarray, m: int) -> np.ndarray:
    """Mean of ``values`` per pair, ignoring nan (nan where a pair has none)."""
    have = ~np.isnan(values)
    num = np.bincount(inv[have], weights=values[have], minlength=m)
    den = np.bincount(inv[have], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def series_grid(t: InterventionTable) -> SeriesGrid:
    """Group the table's rows into series and (series, prompt) means (vectorized)."""
    is_control = np.array([c is not None for c in t.control_type], dtype=bool)
    serves = np.where(np.isfinite(t.for_strength), t.for_strength, t.strength)
    parts = [_codes(t.feature_id)[1], _codes(t.kind)[1], _codes(t.control_type)[1], _codes(t.control_for)[1],
             np.unique(np.where(np.isnan(serves), np.inf, serves), return_inverse=True)[1],
             np.unique(np.where(np.isnan(t.strength), np.inf, t.strength), return_inverse=True)[1]]
    key = np.zeros(t.n, dtype=np.int64)
    for codes in parts:
        key = key * (int(codes.max()) + 1 if len(codes) else 1) + codes
    _, series = np.unique(key, return_inverse=True)
    G = int(series.max()) + 1 if t.n else 0
    held = t.split == HELDOUT
    held_rows = np.bincount(series, weights=held.astype(np.float64), minlength=G)
    fallback_s = (held_rows == 0) & ~np.bincount(series, weights=is_control, minlength=G).astype(bool)
    use = held | fallback_s[series]
    s_use = series[use]
    pnames, p = _codes(t.prompt_id[use])
    P = len(pnames)
    pair_key = s_use.astype(np.int64) * max(P, 1) + p
    pairs, inv = np.unique(pair_key, return_inverse=True)
    Q = len(pairs)
    pair_s = pairs // max(P, 1)
    row_of = np.full(G, -1, dtype=np.int64)  # a representative row per series
    row_of[series[::-1]] = np.arange(t.n)[::-1]
    positive = np.full(P, -1, dtype=np.int8)
    np.maximum.at(positive, p, t.positive[use])
    edit = t.edit_norm[use]
    return SeriesGrid(
        feature_id=t.feature_id[row_of], kind=t.kind[row_of], strength=t.strength[row_of],
        serves_strength=serves[row_of], control_type=t.control_type[row_of], control_for=t.control_for[row_of],
        fallback=fallback_s, implied=t.control_for_implied[row_of], matched_on=t.matched_on[row_of],
        match_tolerance=t.match_tolerance[row_of], tolerance_widened=t.tolerance_widened[row_of],
        indptr=np.r_[0, np.cumsum(np.bincount(pair_s, minlength=G))].astype(np.int64),
        prompt=pairs % max(P, 1),
        effect=_pair_mean(inv, t.effect[use], Q),
        side=_pair_mean(inv, t.side_effect[use], Q),
        edit_sq=_pair_mean(inv, edit * edit, Q),
        baseline=_pair_mean(inv, t.baseline[use], Q),
        prompts=pnames,
        positive=positive,
    )
