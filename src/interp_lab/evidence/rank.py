"""Association ranking: choose candidates on discovery rows, measure them on held-out rows.

evidence.md rules 1-6, 8-10: zeros counted (stats.py), AUROC / SMD /
point-biserial (binary) or Spearman (graded) with bootstrap intervals and BH
q-values, selection and estimation on different rows, direction kept,
specificity, stability by resampling, covariate adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_lab.errors import InputError, UsageError
from interp_lab.evidence import bootstrap, stats
from interp_lab.evidence.splits import DISCOVERY, HELDOUT, assign_splits
from interp_lab.io.records import RecordMatrix
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.records import SPLITS

SELECT_BY = ("association", "top_activations", "both")


@dataclass(frozen=True)
class RankSettings:
    """Knobs of the ranker; every value is written into the report's settings."""

    top_k: int = 10
    seed: int = 0
    bootstrap: int = 500  # resamples for held-out confidence intervals (by prompt for token rows)
    stability_resamples: int = 100  # resamples of the discovery rows for rank stability
    pool: int = 50  # candidates re-ranked under resampling (at least 5 x top_k)
    alpha: float = 0.05  # discovery q-value gate for selection
    examples: int = 8
    signature_probes: int = 256
    select_by: str = "association"
    """How the top_k are chosen on discovery rows: ``association`` (the strength of the signed effect
    over every row: AUROC or Spearman), ``top_activations`` (how far the mean score of a feature's
    ``top_activations`` highest-activating rows is from the rows' mean: what reading a feature's top
    examples checks, and what a sparse latent firing on few but the right prompts has), or ``both``
    (taken in turn from the two orders)."""
    top_activations: int = 20

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise UsageError(f"select_by {self.select_by!r}: use {', '.join(SELECT_BY)}")
        if self.top_activations < 1:
            raise UsageError(f"top_activations {self.top_activations}: at least 1 row")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AssociationResult:
    binary: bool
    statistic: str  # "auroc" or "spearman"
    split_source: str  # "given", "hash" or "given+hash"
    split_counts: dict[str, dict[str, int]]
    n_tested: int
    n_significant: int  # discovery q < alpha
    candidates: list[int]  # feature columns chosen on discovery, best first
    splits: np.ndarray  # [rows] split code used for every row
    evidence: dict[int, dict[str, Any]] = field(default_factory=dict)  # column -> card fields
    covariates: list[str] = field(default_factory=list)


P_FLOOR = 1e-300


def _r(x: float | np.floating, nd: int = 6) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, nd)


def _p(x: float | np.floating) -> float | None:
    """p / q values to 4 significant digits, floored at 1e-300 (below that doubles underflow)."""
    x = float(x)
    return None if not np.isfinite(x) else float(f"{max(x, P_FLOOR):.4g}")


def _covariate_design(covs: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Intercept + standardized numeric covariates + one-hot categorical ones (first level dropped)."""
    parts = [np.ones((int(rows.sum()), 1))]
    for name in sorted(covs):
        v = covs[name][rows]
        if v.dtype == object:
            levels = sorted(set(v.tolist()))
            parts.extend((v == lev).astype(np.float64)[:, None] for lev in levels[1:])
        else:
            sd = v.std()
            parts.append(((v - v.mean()) / (sd if sd > 0 else 1.0))[:, None])
    return np.hstack(parts)


def rank_associations(m: RecordMatrix, settings: RankSettings, force: list[int] | None = None,
                      selectable: np.ndarray | None = None, forced_by: str = "interventions") -> AssociationResult:
    """Rank every feature of ``m`` for its scored rows; fill card evidence for the candidates.

    ``force``: extra columns (e.g. features with intervention evidence) that
    become candidates whatever their association. ``selectable``: [features]
    bool, the columns the top_k may be chosen from (others, such as
    directions fitted on the discovery rows themselves, only when forced);
    ``forced_by`` is what the cards of forced columns say selected them.
    """
    scored = np.isfinite(m.scores)
    if not scored.any():
        raise InputError(m.path, "no row has a criterion_score; rows without one are context, not evidence",
                         field="criterion_score")
    splits, split_source = assign_splits(m.prompt_ids, m.splits, "rank", m.prompt_units())
    y = np.where(scored, m.scores, 0.0)
    disc = scored & (splits == DISCOVERY)
    held = scored & (splits == HELDOUT)
    counts = {
        name: {"rows": int((scored & (splits == code)).sum()),
               "prompts": int(len(np.unique(m.prompt_ids[scored & (splits == code)])))}
        for code, name in enumerate(SPLITS)
    }
    binary = stats.is_binary(m.scores[scored])
    for name, mask in (("discovery", disc), ("heldout", held)):
        ys = y[mask]
        if mask.sum() < 4 or (binary and (ys.min() == ys.max())) or (not binary and np.ptp(ys) == 0):
            raise InputError(
                m.path,
                f"the {name} split has {int(mask.sum())} scored rows"
                + (" of one class" if mask.sum() >= 4 else "")
                + "; ranking needs both classes (or varied scores) in discovery and held-out rows",
                field="criterion_score",
            )
    Xc = m.to_csc()
    groups = m.prompt_groups() if (m.token_index >= 0).any() else None
    d = stats.column_stats(Xc, disc, y)
    q = stats.bh_qvalues(d.p)
    F = m.n_features
    # Selection: significant features first, then by strength of the signed effect.
    strength = np.abs(d.effect)
    sig = q < settings.alpha
    excluded = np.zeros(F, dtype=bool) if selectable is None else ~np.asarray(selectable, dtype=bool)
    order = np.lexsort((np.arange(F), -strength, ~sig, excluded))
    top_k = min(settings.top_k, int((~excluded).sum()))
    orders = {"association": order}
    if settings.select_by != "association":  # over every feature only when it chooses (a sort of all entries)
        ta = stats.top_activation_stats(Xc, disc, y, settings.top_activations)
        ta_q = stats.bh_qvalues(ta.p)
        orders["top_activations"] = np.lexsort((np.arange(F), -np.abs(ta.mean - ta.base), ~(ta_q < settings.alpha),
                                                excluded))
    turns = list(orders) if settings.select_by == "both" else [settings.select_by]
    heads = dict.fromkeys(turns, 0)
    by: dict[int, str] = {}  # column -> the order that chose it
    while len(by) < top_k:  # in turn from each order, skipping what the other already chose
        name = turns[len(by) % len(turns)]
        while int(orders[name][heads[name]]) in by:
            heads[name] += 1
        by[int(orders[name][heads[name]])] = name
    candidates = list(by)
    top_set = set(candidates)
    for c in force or []:
        if c not in candidates:
            candidates.append(int(c))
    res = AssociationResult(
        binary=binary,
        statistic="auroc" if binary else "spearman",
        split_source=split_source,
        split_counts=counts,
        n_tested=F,
        n_significant=int(sig.sum()),
        candidates=candidates,
        splits=splits,
        covariates=sorted(m.covariates),
    )
    if not candidates:
        return res
    cand = np.asarray(candidates)
    rng = np.random.default_rng(settings.seed)
    held_idx = np.flatnonzero(held)
    h = stats.column_stats(Xc.take_major(cand), held, y)
    hq = stats.bh_qvalues(h.p)
    boot = bootstrap.bootstrap_in_chunks(Xc, cand, held_idx, y, settings.bootstrap, rng,
                                     None if groups is None else groups[held_idx])
    cis = {k: bootstrap.percentile_ci(v) for k, v in boot.items()}
    # Stability: re-rank a pool of discovery candidates under resampling of the discovery rows. The pool
    # holds only columns the top_k may be chosen from: columns fitted on the discovery rows (contrast
    # directions) would win every discovery resample. Their own stability is measured out of sample:
    # top-k frequency against the same pool under resamples of the held-out rows (``_held_stability``).
    pool_n = min(F, max(settings.pool, 5 * top_k))
    pool = np.unique(np.concatenate([order[:pool_n], cand]))
    pool = pool[~excluded[pool]]
    fitted = cand[excluded[cand]]
    disc_idx = np.flatnonzero(disc)
    in_top = np.zeros(0)
    if len(pool):
        sboot = bootstrap.bootstrap_in_chunks(Xc, pool, disc_idx, y, settings.stability_resamples, rng,
                                          None if groups is None else groups[disc_idx])["effect"]
        # rank within the pool by |effect| for each resample; top-k membership frequency
        ranks = np.argsort(np.argsort(-np.abs(sboot), axis=1, kind="stable"), axis=1, kind="stable")
        in_top = (ranks < top_k).mean(0)
    pos_in_pool = {int(c): i for i, c in enumerate(pool)}
    held_top = _held_stability(Xc, pool, fitted, held_idx, y, top_k, settings.stability_resamples, rng,
                               None if groups is None else groups[held_idx])
    disc_rank = np.empty(F, dtype=np.int64)
    disc_rank[order] = np.arange(1, F + 1)
    ta_held = stats.top_activation_stats(Xc.take_major(cand), held, y, settings.top_activations)
    if "top_activations" in orders:
        ta_rank = np.empty(F, dtype=np.int64)
        ta_rank[orders["top_activations"]] = np.arange(1, F + 1)
    else:  # the candidates' own: no rank or q among all features
        ta, ta_q, ta_rank = stats.top_activation_stats(Xc.take_major(cand), disc, y, settings.top_activations), None, None
    adjusted = _adjusted(m, Xc, cand, held, y) if m.covariates else None
    for j, c in enumerate(cand):
        c = int(c)
        direction = 1 if d.effect[c] >= 0 else -1
        tc = j if ta_rank is None else c  # the candidate's place in ``ta``
        disc_block = {
            "rows": d.n, "positives": _r(d.n_pos, 3), "effect": _r(d.effect[c]), "p": _p(d.p[c]),
            "q": _p(q[c]), "r": _r(d.r[c]), "rank": int(disc_rank[c]),
        }
        held_block: dict[str, Any] = {"rows": h.n, "positives": _r(h.n_pos, 3)}
        for key in ("effect", "auroc", "smd", "spearman", "r"):
            val = getattr(h, key)[j]
            if np.isfinite(val):
                held_block[key] = _r(val)
                if key in cis:
                    held_block[f"{key}_ci"] = [_r(cis[key][0][j]), _r(cis[key][1][j])]
        if binary:
            disc_block["auroc"] = _r(d.auroc[c])
            disc_block["smd"] = _r(d.smd[c])
        else:
            disc_block["spearman"] = _r(d.spearman[c])
        held_block["p"] = _p(h.p[j])
        held_block["q"] = _p(hq[j])
        ci = cis["effect"]
        ci_excludes_zero = bool(ci[0][j] > 0 or ci[1][j] < 0)
        held_block["ci_excludes_zero"] = ci_excludes_zero
        aligned = float(h.effect[j]) * direction
        spec = _specificity(h, j, direction)
        ev: dict[str, Any] = {
            "direction": "promotes" if direction > 0 else "suppresses",
            "selected_on": "discovery" if c in top_set else forced_by,
            "association": {"statistic": "auroc" if binary else "spearman",
                            "discovery": disc_block, "heldout": held_block, "selected_by": by.get(c),
                            "top_activations": {
                                "rows": settings.top_activations,
                                "discovery": {"mean_score": _r(ta.mean[tc]), "rows_mean_score": _r(ta.base),
                                              "firing": int(ta.firing[tc]), "z": _r(ta.z[tc], 4),
                                              "q": None if ta_q is None else _p(ta_q[c]),
                                              "rank": None if ta_rank is None else int(ta_rank[c])},
                                "heldout": {"mean_score": _r(ta_held.mean[j]), "rows_mean_score": _r(ta_held.base),
                                            "firing": int(ta_held.firing[j]), "z": _r(ta_held.z[j], 4),
                                            "p": _p(ta_held.p[j])}}},
            "specificity": spec,
            "stability": {  # under the association's order, whichever order chose the feature
                "score": _r(held_top[c] if c in held_top else in_top[pos_in_pool[c]], 4),
                "method": (f"top-{top_k} frequency by |effect| against the {len(pool)} discovery candidates over "
                           f"{settings.stability_resamples} bootstrap resamples of held-out rows (fitted on the "
                           "discovery rows, so measured out of sample)") if c in held_top else
                          (f"top-{top_k} frequency by |effect| among {len(pool)} discovery candidates "
                           f"over {settings.stability_resamples} bootstrap resamples of discovery rows"),
                "rows": "heldout" if c in held_top else "discovery",
                "split_half": {
                    "discovery_effect": _r(d.effect[c]), "heldout_effect": _r(h.effect[j]),
                    "sign_agrees": bool(np.sign(d.effect[c]) == np.sign(h.effect[j]) and h.effect[j] != 0),
                },
            },
            "association_strength": max(0.0, aligned),
            "heldout_supported": ci_excludes_zero and aligned > 0,
            "flags": [],
        }
        if adjusted is not None:
            adj = adjusted[j]
            ev["association"]["adjusted"] = adj
            if adj["confounded"]:
                ev["flags"].append("confounded")
                ev["heldout_supported"] = False  # its association is the covariate's
            ev["association_strength"] *= adj["retention"]
        if not ev["stability"]["split_half"]["sign_agrees"]:
            ev["flags"].append("direction_unstable")
        res.evidence[c] = ev
    return res


def _held_stability(Xc: Compressed, pool: np.ndarray, fitted: np.ndarray, held_idx: np.ndarray, y: np.ndarray,
                    top_k: int, resamples: int, rng: np.random.Generator, groups: np.ndarray | None
                    ) -> dict[int, float]:
    """{column: stability} of columns fitted on the discovery rows: how often the column's |effect| would
    place it in the top k against the pool of discovery candidates, each judged alone (a fitted column
    never displaces another), over bootstrap resamples of the held-out rows, where neither was fitted or
    chosen."""
    if not len(fitted):
        return {}
    boot = np.abs(bootstrap.bootstrap_in_chunks(Xc, np.concatenate([pool, fitted]), held_idx, y, resamples, rng,
                                            groups)["effect"])
    P = len(pool)
    above = (boot[:, :P, None] > boot[:, None, P:]).sum(1)  # [resamples, fitted]: pool members ahead
    return {int(c): float(v) for c, v in zip(fitted, (above < top_k).mean(0))}


def _specificity(h: stats.ColumnStats, j: int, direction: int) -> dict[str, Any]:
    """Firing-rate and activation-mass selectivity in the feature's direction (add-one smoothed)."""
    n1, n0 = h.n_pos, h.n - h.n_pos
    rate_pos = (h.fire_pos[j] + 0.5) / (n1 + 1)
    rate_neg = (h.fire_neg[j] + 0.5) / (n0 + 1)
    g = (h.mass_pos[j] + h.mass_neg[j]) / max(h.n, 1)
    mass_pos = (h.mass_pos[j] + g) / (n1 + 1)
    mass_neg = (h.mass_neg[j] + g) / (n0 + 1)
    sel_rate = (rate_pos - rate_neg) / (rate_pos + rate_neg)
    sel_mass = (mass_pos - mass_neg) / (mass_pos + mass_neg) if mass_pos + mass_neg > 0 else 0.0
    score = float(np.clip(direction * (sel_rate + sel_mass) / 2.0, 0.0, 1.0))
    return {
        "score": _r(score, 4),
        "firing_rate_pos": _r(rate_pos, 6), "firing_rate_neg": _r(rate_neg, 6),
        "mean_abs_pos": _r(mass_pos, 6), "mean_abs_neg": _r(mass_neg, 6),
        "rows": "heldout",
    }


def _adjusted(m: RecordMatrix, Xc: Compressed, cand: np.ndarray, held: np.ndarray, y: np.ndarray) -> list[dict]:
    """Partial correlation with the score after regressing out the covariates (held-out rows)."""
    C = _covariate_design(m.covariates, held)
    x = Xc.take_major(cand).dense_rows(np.flatnonzero(held))
    yh = y[held]
    pr, df = stats.partial_correlation(x, yh, C)
    lo, hi, p = stats.fisher_ci(pr, df)
    raw = stats.partial_correlation(x, yh, np.ones((len(yh), 1)))[0]
    _, _, raw_p = stats.fisher_ci(raw, len(yh) - 2)
    out = []
    for j in range(len(cand)):
        same_sign = np.sign(pr[j]) == np.sign(raw[j])
        retention = float(np.clip(pr[j] / raw[j], 0.0, 1.0)) if raw[j] != 0 and same_sign else 0.0
        raw_sig = raw_p[j] < 0.05
        confounded = bool(raw_sig and (p[j] >= 0.05 or retention < 0.25))
        out.append({
            "covariates": sorted(m.covariates),
            "method": "partial correlation (covariates regressed out, held-out rows), Fisher-z interval",
            "raw_r": _r(raw[j]), "partial_r": _r(pr[j]), "partial_r_ci": [_r(lo[j]), _r(hi[j])],
            "p": _p(p[j]), "retention": _r(retention, 4), "confounded": confounded,
        })
    return out
