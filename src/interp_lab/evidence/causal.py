"""Causal evidence from intervention records, judged against controls (evidence.md rule 7).

The signed effect of one row is ``sign(kind) * (intervention_score - baseline_score)``:
positive means the feature promotes the criterion, negative that it
suppresses it; nothing is folded into an absolute value.
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
from interp_lab.evidence.stats import significant
from interp_lab.io.jsonl import read_jsonl
from interp_lab.schemas.records import SPLITS, InterventionRecord, intervention_sign


@dataclass(frozen=True)
class CausalSettings:
    bootstrap: int = 1000
    min_n: int = 100  # held-out prompts needed for strong_causal (or every prompt available)
    min_controls: int = 20
    seed: int = 0
    allow_criterion_mismatch: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
    control_type: np.ndarray  # object: None, random_feature, random_direction, placebo
    control_for: np.ndarray  # object: a feature_id, or "*" for every feature of the control's kind and strength
    score_kinds: list[str]
    models: list[str]
    sources: list[str]
    rows_read: int
    rows_other_criterion: int
    split_source: str
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # control rows that name no control_for (the 0.2 form), read as controls for every feature ("*")
    control_for_implied: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

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


def interventions_table(records: Iterable[tuple[int, InterventionRecord]], criterion: str | None, *,
                        allow_mismatch: bool, name: str) -> InterventionTable:
    want = normalize_criterion(criterion) if criterion else None
    cols: dict[str, list] = {k: [] for k in ("fid", "kind", "strength", "effect", "side", "base", "pid",
                                             "split", "ctype", "cfor", "implied", "line")}
    score_kinds: set[str] = set()
    models: set[str] = set()
    sources: set[str] = set()
    read = other = 0
    for number, rec in records:
        read += 1
        if want and rec.criterion and not allow_mismatch and normalize_criterion(rec.criterion) != want:
            other += 1
            continue
        meta = rec.metadata or {}
        sign = intervention_sign(rec.intervention, meta.get("direction"))
        cols["fid"].append(rec.feature_id)
        cols["kind"].append(rec.intervention)
        # a steering control runs at its own (KL-matched) strength and belongs to the entry of for_strength
        tied = meta.get("for_strength")
        strength = tied if rec.control_type and isinstance(tied, (int, float)) and np.isfinite(tied) else rec.strength
        cols["strength"].append(np.nan if strength is None else float(strength))
        cols["effect"].append(sign * (rec.intervention_score - rec.baseline_score))
        cols["side"].append(np.nan if rec.side_effect_score is None else rec.side_effect_score)
        cols["base"].append(rec.baseline_score)
        cols["pid"].append(None if rec.prompt_id is None else str(rec.prompt_id))
        cols["split"].append(-1 if rec.split is None else SPLITS.index(rec.split))
        cols["ctype"].append(rec.control_type)
        cols["cfor"].append(rec.control_for)
        cols["implied"].append(rec.control_type is not None and rec.control_for is None)
        cols["line"].append(number)
        if meta.get("score_kind"):
            score_kinds.add(str(meta["score_kind"]))
        if rec.model:
            models.add(rec.model)
        if meta.get("source"):
            sources.add(str(meta["source"]))
    pid = np.array(cols["pid"], dtype=object)
    # rows without a prompt_id are their own prompt (named by line) for splitting and resampling
    missing = np.array([p is None for p in pid], dtype=bool)
    if missing.any():
        pid[missing] = [f"line-{n}" for n in np.asarray(cols["line"])[missing]]
    implied = np.asarray(cols["implied"], dtype=bool)
    control_for = np.array(cols["cfor"], dtype=object)
    control_for[implied] = "*"  # the 0.2 README's controls: control_type alone, for the whole file
    split = np.asarray(cols["split"], dtype=np.int8)
    need = split < 0
    source = "given"
    if need.any():
        split[need] = split_codes(pid[need], "rank")
        source = "hash" if need.all() else "given+hash"
    return InterventionTable(
        path=name,
        feature_id=np.array(cols["fid"], dtype=object),
        kind=np.array(cols["kind"], dtype=object),
        strength=np.asarray(cols["strength"], dtype=np.float64),
        effect=np.asarray(cols["effect"], dtype=np.float64),
        side_effect=np.asarray(cols["side"], dtype=np.float64),
        baseline=np.asarray(cols["base"], dtype=np.float64),
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
    )


def _r(x: float, digits: int = 6) -> float | None:
    return significant(x, digits)


def _prompt_means(effect: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """Mean effect per prompt (rows of one prompt are one observation)."""
    _, inv = np.unique(prompts.astype(str), return_inverse=True)
    return np.bincount(inv, weights=effect) / np.bincount(inv)


def _feature_prompt_means(features: np.ndarray, prompts: np.ndarray, effect: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the mean over its prompts of the per-prompt mean effect (vectorized)."""
    uniq, f = np.unique(features.astype(str), return_inverse=True)
    _, p = np.unique(prompts.astype(str), return_inverse=True)
    pairs, pair_of = np.unique(f.astype(np.int64) * (p.max() + 1) + p, return_inverse=True)
    pair_mean = np.bincount(pair_of, weights=effect) / np.bincount(pair_of)
    pair_feature = pairs // (p.max() + 1)
    return uniq, np.bincount(pair_feature, weights=pair_mean) / np.bincount(pair_feature)


def _mean_ci(values: np.ndarray, rng: np.random.Generator, B: int) -> tuple[float, float, float]:
    n = len(values)
    if n == 0:
        return np.nan, np.nan, np.nan
    if n == 1:
        return float(values[0]), np.nan, np.nan
    idx = rng.integers(0, n, (B, n))
    means = values[idx].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(values.mean()), float(lo), float(hi)


def causal_evidence(
    t: InterventionTable, settings: CausalSettings, available_heldout: int | None = None
) -> dict[str, dict[str, Any]]:
    """Causal evidence per feature: ``{feature_id: {kind_key: {...}}}`` from held-out rows."""
    rng = np.random.default_rng(settings.seed)
    is_control = np.array([c is not None for c in t.control_type], dtype=bool)
    held = t.split == HELDOUT
    feats = sorted(set(t.feature_id[~is_control].tolist()))
    has_strength = np.isfinite(t.strength)
    out: dict[str, dict[str, Any]] = {}
    for fid in feats:
        mine = (~is_control) & (t.feature_id == fid)
        entries: dict[str, Any] = {}
        for kind in sorted(set(t.kind[mine].tolist())):
            k_rows = mine & (t.kind == kind)
            strengths = sorted(set(t.strength[k_rows & has_strength].tolist()))
            if len(strengths) <= 1:
                groups = [(kind, strengths[0] if strengths else None, k_rows)]
            else:  # a sweep: one entry per strength
                groups = [(f"{kind}@{s:g}", s, k_rows & (t.strength == s)) for s in strengths]
            for key, strength, sel in groups:
                entries[key] = _one_kind(t, fid, kind, strength, sel, held, is_control, rng, settings,
                                         available_heldout)
        side = (~is_control) & (t.feature_id == fid) & held & np.isfinite(t.side_effect)
        out[fid] = {"kinds": entries}
        if side.any():
            mean, lo, hi = _mean_ci(_prompt_means(t.side_effect[side], t.prompt_id[side]), rng, settings.bootstrap)
            out[fid]["side_effects"] = {"mean": _r(mean), "ci": [_r(lo), _r(hi)],
                                        "n": int(len(np.unique(t.prompt_id[side].astype(str)))),
                                        "measure": "side_effect_score of intervention records (held-out, all kinds pooled; "
                                                   "per kind in each causal entry)"}
    return out


def _one_kind(t: InterventionTable, fid: str, kind: str, strength: float | None, sel: np.ndarray,
              held: np.ndarray, is_control: np.ndarray, rng: np.random.Generator,
              settings: CausalSettings, available: int | None) -> dict[str, Any]:
    use = sel & held
    split_used = "heldout"
    if not use.any():
        use, split_used = sel, "all (no held-out rows)"
    vals = _prompt_means(t.effect[use], t.prompt_id[use])
    n = len(vals)
    mean, lo, hi = _mean_ci(vals, rng, settings.bootstrap)
    # controls of the same kind (and strength) for this feature or for its whole batch
    same = (t.kind == kind) & held
    if strength is not None:  # controls at the same strength (or of no stated strength)
        same &= (t.strength == strength) | ~np.isfinite(t.strength)
    for_me = (t.control_for == fid) | (t.control_for == "*")
    ctl = is_control & same & for_me
    randoms = ctl & np.isin(t.control_type, ["random_feature", "random_direction"])
    placebo = ctl & (t.control_type == "placebo")
    control_block: dict[str, Any] = {"n": 0}
    threshold = np.nan
    beyond = False
    if randoms.any():
        # each control feature's effect is its mean over prompts (rows of one prompt averaged first)
        uniq, ctl_effects = _feature_prompt_means(t.feature_id[randoms], t.prompt_id[randoms], t.effect[randoms])
        if mean >= 0:
            threshold, side = float(np.quantile(ctl_effects, 0.95)), "95th percentile"
            beyond = bool(mean > threshold)
            frac = float((ctl_effects < mean).mean())
        else:
            threshold, side = float(np.quantile(ctl_effects, 0.05)), "5th percentile (suppression side)"
            beyond = bool(mean < threshold)
            frac = float((ctl_effects > mean).mean())
        control_block = {
            "n": len(uniq),
            "types": sorted(set(t.control_type[randoms].tolist())),
            "mean": _r(ctl_effects.mean()),
            "threshold": _r(threshold),
            "threshold_is": side,
            "fraction_exceeded": _r(frac, 4),
            "effects": [_r(e) for e in np.sort(ctl_effects)],
        }
        implied = randoms & t.control_for_implied
        if implied.any():
            control_block["without_control_for"] = int(len(np.unique(t.feature_id[implied].astype(str))))
            control_block["without_control_for_is"] = (
                "controls that name no control_for (the 0.2 form), counted for every feature of this kind "
                "and strength")
    placebo_block = None
    if placebo.any():
        pvals = _prompt_means(t.effect[placebo], t.prompt_id[placebo])
        pm, plo, phi = _mean_ci(pvals, rng, settings.bootstrap)
        placebo_block = {"mean": _r(pm), "ci": [_r(plo), _r(phi)], "n": len(pvals)}
    side_block = None
    side_rows = use & np.isfinite(t.side_effect)
    if side_rows.any():
        svals = _prompt_means(t.side_effect[side_rows], t.prompt_id[side_rows])
        sm, slo, shi = _mean_ci(svals, rng, settings.bootstrap)
        side_block = {"mean": _r(sm), "ci": [_r(slo), _r(shi)], "n": len(svals)}
    ci_excludes = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
    all_available = available is not None and n >= available
    reasons = []
    if split_used != "heldout":
        reasons.append("no held-out rows")
    if not ci_excludes:
        reasons.append("confidence interval includes zero")
    if n < settings.min_n and not all_available:
        reasons.append(f"held-out n = {n} < {settings.min_n}")
    if control_block["n"] < settings.min_controls:
        reasons.append(f"{control_block['n']} random controls < {settings.min_controls}")
    elif not beyond:
        reasons.append("effect does not exceed the controls' " + control_block["threshold_is"])
    strong = not reasons
    causal_score = None
    if control_block["n"]:
        causal_score = control_block["fraction_exceeded"] if ci_excludes else 0.0
    return {
        "kind": kind,
        "strength": None if strength is None else _r(strength),
        "split": split_used,
        "mean_effect": _r(mean),
        "ci": [_r(lo), _r(hi)],
        "baseline_mean": _r(_prompt_means(t.baseline[use], t.prompt_id[use]).mean()),
        "n": n,
        "n_is_all_available": bool(all_available),
        "direction": "promotes" if mean >= 0 else "suppresses",
        "controls": control_block,
        "placebo": placebo_block,
        "side_effect": side_block,
        "strong_causal": strong,
        "reasons": reasons,
        "causal_score": causal_score,
    }
