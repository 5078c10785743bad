"""Causal evidence from intervention records, judged against controls (evidence.md rule 7).

One *entry* per tested feature x intervention kind (x strength, for a sweep): the feature's held-out
mean effect against the mean effects of its controls, in the direction discovery claimed for it.
``strong_causal`` = (a) the Benjamini-Hochberg q of its one-sided p-value (``causal_stats``) over every
entry of the call (the report) below ``alpha``, (b) the paired bootstrap lower bound of (effect - the
controls' 95th percentile) above zero, for every control family, (c) at least ``min_n`` held-out prompts
(or every prompt available), with at least ``min_controls`` controls per family, the held-out sign the
claimed one and, for steering, a mean side-effect KL within the budget.

The signed effect of one row is ``sign(kind) * (intervention_score - baseline_score)``: positive means
the feature promotes the criterion, negative that it suppresses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_lab import defaults
from interp_lab.evidence import causal_stats as cs
from interp_lab.evidence.bootstrap import bootstrap_weights
from interp_lab.evidence.causal_entry import entry_fields, pooled_side_effects
from interp_lab.evidence.intervention_table import (
    FAMILIES,
    FAMILY_OF,
    InterventionTable,
    SeriesGrid,
    interventions_from_dicts,
    interventions_table,
    load_interventions,
    normalize_criterion,
    series_grid,
)

__all__ = ["CausalSettings", "InterventionTable", "causal_evidence", "causal_rule", "claim_of", "evaluate",
           "interventions_from_dicts", "interventions_table", "load_interventions", "normalize_criterion"]


@dataclass(frozen=True)
class CausalSettings:
    bootstrap: int = 1000  # prompt resamples for the mean's interval and the paired lower bound
    min_n: int = 100  # held-out prompts needed for strong_causal (or every prompt available)
    min_controls: int = 20  # per control family
    alpha: float = cs.ALPHA  # BH q below this
    kl_budget: float = defaults.KL_BUDGET  # nats: a steer entry whose mean side-effect KL exceeds it is not strong
    small_effect: float = 0.05  # |effect| below this fraction of the baseline: flagged small_effect
    seed: int = 0
    allow_criterion_mismatch: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def claim_of(direction: Any) -> int | None:
    """+1 / -1 from ``promotes`` / ``suppresses`` (or a signed number); None for anything else."""
    if direction in ("promotes", "suppresses"):
        return 1 if direction == "promotes" else -1
    if isinstance(direction, (int, float)) and not isinstance(direction, bool) and direction != 0:
        return 1 if direction > 0 else -1
    return None


@dataclass
class Entry:
    """One feature x kind (x strength) test with the arrays it was judged on."""

    feature_id: str
    key: str
    kind: str
    strength: float | None
    fallback: bool  # no held-out rows: all the feature's rows
    claim: int | None  # discovery direction, None = two-sided
    sign: int  # the direction tested: the claim, or the held-out sign when two-sided
    n: int  # the feature's prompts
    values: np.ndarray  # [prompts, 1 + k] per-prompt mean effects (nan = not measured); column 0 the feature
    family: np.ndarray  # [k] control family per control column
    series: np.ndarray  # [1 + k] SeriesGrid index per column
    star: np.ndarray  # [B, 1 + k] means under the prompt resamples
    placebo: np.ndarray  # [m] the placebo's per-prompt effects
    kl_budget: float | None = None  # steering: the side-effect budget it is held to
    result: dict[str, Any] = field(default_factory=dict)
    p: float = np.nan
    lower_bound: float = np.nan
    families: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def means(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.nanmean(self.values, axis=0)

    @property
    def level(self) -> float:
        """The lower bound's one-sided level: 97.5% when the direction was read from the same data."""
        return 0.95 if self.claim is not None else 0.975


def family_test(x_f: float | np.ndarray, x_c: np.ndarray, f_star: np.ndarray, c_star: np.ndarray, two_sided: bool,
                level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(p, robust, kurtosis, lower bound) of feature(s) against one control family, all signed so positive is
    the tested direction; vectorized over leading axes (``x_c`` [..., k], ``c_star`` [..., B, k])."""
    k = x_c.shape[-1]
    p, robust, kurt = cs.control_p_values(x_f, x_c)
    if two_sided:
        p = np.minimum(1.0, 2.0 * p)
    lb = (cs.paired_lower_bound(x_f, x_c, f_star, c_star, level) if k >= 2
          else np.full(np.shape(p), np.nan))
    return p, robust, kurt, lb


@dataclass
class CausalRun:
    """Every entry of one call, with the grid they were cut from."""

    grid: SeriesGrid
    entries: list[Entry]
    settings: CausalSettings
    available: int | None

    def n_ok(self, n: int) -> bool:
        return n >= self.settings.min_n or (self.available is not None and n >= self.available)


def evaluate(t: InterventionTable, settings: CausalSettings, available_heldout: int | None = None,
             claims: Mapping[str, int] | None = None, kl_budgets: Mapping[str, float] | None = None) -> CausalRun:
    """Entries of every tested feature x kind, judged (p, bound, BH q over all of them, verdict).
    ``kl_budgets``: per feature, the budget its steering strength was calibrated under (default the
    settings')."""
    grid = series_grid(t)
    rng = np.random.default_rng(settings.seed)
    claims = dict(claims or {})
    is_ctl = np.array([c is not None for c in grid.control_type], dtype=bool)
    family = np.array([FAMILY_OF.get(c) if c else None for c in grid.control_type], dtype=object)
    targets = sorted(np.flatnonzero(~is_ctl), key=lambda g: (str(grid.feature_id[g]), str(grid.kind[g]),
                                                             np.nan_to_num(grid.strength[g], nan=-np.inf)))
    n_strengths: dict[tuple[str, str], int] = {}
    for g in targets:
        n_strengths[(grid.feature_id[g], grid.kind[g])] = n_strengths.get((grid.feature_id[g], grid.kind[g]), 0) + 1
    entries = []
    for g in targets:
        fid, kind, strength = str(grid.feature_id[g]), str(grid.kind[g]), float(grid.strength[g])
        strength_v = None if np.isnan(strength) else strength
        key = kind if n_strengths[(fid, kind)] == 1 or strength_v is None else f"{kind}@{strength:g}"
        mine = is_ctl & (grid.kind == kind) & ((grid.control_for == fid) | (grid.control_for == "*"))
        if strength_v is not None:  # controls that serve this strength (or state none)
            mine &= np.isclose(grid.serves_strength, strength, rtol=1e-9, atol=0) | np.isnan(grid.serves_strength)
        ctl = np.flatnonzero(mine & (family != None))  # noqa: E711 (object array)
        ctl = ctl[np.argsort([FAMILIES.index(f) for f in family[ctl]], kind="stable")]
        placebo = np.flatnonzero(mine & (grid.control_type == "placebo"))
        cols = np.r_[g, ctl].astype(np.int64)
        values = _matrix(grid, cols)
        W = bootstrap_weights(values.shape[0], settings.bootstrap, rng)
        star = cs.resampled_means(values, W)
        with np.errstate(invalid="ignore"):  # per-prompt mean over the placebo series (normally one)
            pl = np.nanmean(_matrix(grid, placebo), axis=1) if len(placebo) else np.zeros(0)
        budget = float((kl_budgets or {}).get(fid, settings.kl_budget)) if kind == "steer" else None
        e = Entry(fid, key, kind, strength_v, bool(grid.fallback[g]), claim_of(claims.get(fid)), 1,
                  int((~np.isnan(values[:, 0])).sum()), values, family[ctl].astype(str), cols, star, pl, budget)
        _judge(e)
        entries.append(e)
    run = CausalRun(grid, entries, settings, available_heldout)
    q = cs.bh_rows(np.array([e.p for e in entries], dtype=np.float64)) if entries else np.zeros(0)
    m = int(np.isfinite(q).sum())
    for e, qv in zip(entries, q):
        entry_fields(run, e, float(qv), m)
    return run


def _matrix(grid: SeriesGrid, cols: np.ndarray) -> np.ndarray:
    """[prompts, len(cols)] per-prompt effects of the series ``cols`` over the union of their prompts."""
    sl = [grid.pairs(int(c)) for c in cols]
    prompts = np.unique(np.concatenate([grid.prompt[s] for s in sl])) if sl else np.zeros(0, dtype=np.int64)
    out = np.full((len(prompts), len(cols)), np.nan)
    for j, s in enumerate(sl):
        out[np.searchsorted(prompts, grid.prompt[s]), j] = grid.effect[s]
    return out


def _judge(e: Entry) -> None:
    """p-value and paired lower bound per control family, and the entry's (the larger p, the smaller bound)."""
    means = e.means
    m_f = means[0]
    e.sign = e.claim if e.claim is not None else (1 if not m_f < 0 else -1)
    s = e.sign
    for fam in FAMILIES:
        idx = np.flatnonzero(e.family == fam) + 1
        if not len(idx):
            continue
        p, robust, kurt, lb = family_test(s * m_f, s * means[idx], s * e.star[:, 0], s * e.star[:, idx],
                                          e.claim is None, e.level)
        e.families[fam] = {"idx": idx, "p": float(p), "robust": bool(robust), "kurtosis": float(kurt),
                           "lower_bound": float(lb)}
    ps = [(f["p"], name) for name, f in e.families.items() if np.isfinite(f["p"])]
    e.p = max(ps)[0] if ps else np.nan
    lbs = [f["lower_bound"] for f in e.families.values()]
    e.lower_bound = min(lbs) if lbs and all(np.isfinite(lbs)) else np.nan


def _dose(info: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The dose-response of a steering calibration: as given, or from the 0.3 keys (gain and KL by strength)."""
    if isinstance(info.get("dose_response"), list):
        return list(info["dose_response"])
    gains = info.get("calibration_gains")
    if not isinstance(gains, Mapping):
        return None
    sides = info.get("calibration_side_effects") or {}
    return [{"strength": float(k), "gain": v, "kl": sides.get(k)} for k, v in sorted(gains.items(),
                                                                                   key=lambda kv: float(kv[0]))]


def causal_evidence(t: InterventionTable, settings: CausalSettings, available_heldout: int | None = None,
                    claims: Mapping[str, int] | None = None, claim_source: str = "discovery",
                    strengths: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Causal evidence per feature: ``{feature_id: {"kinds": {kind_key: {...}}, "side_effects": {...}}}``.

    ``claims``: the direction each feature was found in (+1 promotes, -1 suppresses), fixed before this
    test (``claim_source`` says where from); a feature without one is tested two-sided. ``strengths``: a
    run's steering calibration per feature (``InterventionRun.strengths``): its dose-response and KL
    budget go into the feature's steer entries. ``available_heldout``: the held-out prompts there are
    (n below ``min_n`` is enough when it is all of them)."""
    strengths = strengths or {}
    budgets = {f: float(i["kl_budget"]) for f, i in strengths.items() if isinstance(i, Mapping)
               and isinstance(i.get("kl_budget"), (int, float))}
    run = evaluate(t, settings, available_heldout, claims, budgets)
    out: dict[str, dict[str, Any]] = {}
    for e in run.entries:
        entry = dict(e.result)
        entry["claim_source"] = claim_source if e.claim is not None else None
        info = strengths.get(e.feature_id)
        if e.kind == "steer" and isinstance(info, Mapping):
            dose = _dose(info)
            if dose is not None:
                entry["dose_response"] = dose
            for k in ("within_budget", "rule"):
                if k in info:
                    entry["strength_" + k if k == "rule" else k] = info[k]
        out.setdefault(e.feature_id, {"kinds": {}})["kinds"][e.key] = entry
    for fid, ev in out.items():
        side = pooled_side_effects(run, fid)
        if side is not None:
            ev["side_effects"] = side
    return out


def causal_rule(settings: CausalSettings, measured: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``settings.causal_rule`` of a report: the rule in words, its settings and its measured size and power."""
    s = settings
    text = (
        "strong_causal when, for one feature x intervention kind, over its held-out prompts: "
        f"(a) the Benjamini-Hochberg q (over every card x kind test of the report) of its one-sided p-value "
        f"against its controls' mean effects is below {s.alpha:g}: a predictive t, (effect - controls' mean) / "
        "(controls' SD x sqrt(1 + 1/k)) on k - 1 degrees of freedom, or, when the controls' excess kurtosis is "
        "above 3, a robust t on their median and scaled MAD; in the direction discovery found for the feature "
        "(two-sided, p doubled, when there is none); "
        f"(b) the one-sided 95% lower bound of (effect - the controls' 95th percentile), from {s.bootstrap} "
        "bootstrap resamples of the prompts shared by the feature and its controls (basic bootstrap), is above "
        "zero; "
        f"(c) at least {s.min_n} held-out prompts (or every prompt available, said so); and the held-out "
        f"effect has the claimed sign, each control family has at least {s.min_controls} controls (a "
        "contrast direction must pass (a) and (b) against both random directions and label-permuted refits), "
        f"and a steering edit's mean side-effect KL on unrelated prompts is at most the budget (kl_budget = "
        f"{s.kl_budget:g} nat{'' if s.kl_budget == 1 else 's'}). Entries whose effect is below "
        f"{s.small_effect:.0%} of the baseline score are flagged small_effect (shown, not gating).")
    out: dict[str, Any] = {"rule": text, "alpha": s.alpha, "min_n": s.min_n, "min_controls": s.min_controls,
                           "kl_budget": s.kl_budget, "bootstrap": s.bootstrap, "small_effect": s.small_effect}
    if measured is not None:
        out["measured"] = dict(measured)
    return out
