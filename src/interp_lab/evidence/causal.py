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

from interp_lab.evidence import causal_stats as cs
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
from interp_lab.evidence.stats import bootstrap_weights, significant

__all__ = ["CausalSettings", "InterventionTable", "causal_evidence", "causal_rule", "claim_of", "evaluate",
           "interventions_from_dicts", "interventions_table", "load_interventions", "normalize_criterion"]

DIRECTIONS = {1: "promotes", -1: "suppresses"}


@dataclass(frozen=True)
class CausalSettings:
    bootstrap: int = 1000  # prompt resamples for the mean's interval and the paired lower bound
    min_n: int = 100  # held-out prompts needed for strong_causal (or every prompt available)
    min_controls: int = 20  # per control family
    alpha: float = cs.ALPHA  # BH q below this
    kl_budget: float = 1.0  # nats: a steer entry whose mean side-effect KL exceeds it is not strong
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


def _r(x: Any, digits: int = 6) -> float | None:
    return None if x is None else significant(x, digits)


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
        e = Entry(fid, key, kind, strength_v, bool(grid.fallback[g]), claims.get(fid), 1,
                  int((~np.isnan(values[:, 0])).sum()), values, family[ctl].astype(str), cols, star, pl)
        if kind == "steer":
            e.result["kl_budget"] = float((kl_budgets or {}).get(fid, settings.kl_budget))
        _judge(e)
        entries.append(e)
    run = CausalRun(grid, entries, settings, available_heldout)
    q = cs.bh_rows(np.array([e.p for e in entries], dtype=np.float64)) if entries else np.zeros(0)
    m = int(np.isfinite(q).sum())
    for e, qv in zip(entries, q):
        _verdict(run, e, float(qv), m)
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


def _series_mean(grid: SeriesGrid, g: int, values: np.ndarray) -> float:
    v = values[grid.pairs(int(g))]
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else np.nan


def _interval(x: np.ndarray) -> list[float | None]:
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return [None, None]
    lo, hi = np.quantile(x, [0.025, 0.975])
    return [_r(lo), _r(hi)]


def _verdict(run: CausalRun, e: Entry, q: float, m: int) -> None:
    """The entry's report fields (evidence.md rule 7; FORMATS.md lists them)."""
    grid, st = run.grid, run.settings
    means = e.means
    m_f, s = float(means[0]), e.sign
    ctl = means[1:]
    feat = e.series[0]
    base = _series_mean(grid, feat, grid.baseline)
    has_base = bool(np.isfinite(base) and base != 0)
    kl = _series_mean(grid, feat, grid.side)
    n_side = int((~np.isnan(grid.side[grid.pairs(int(feat))])).sum())
    reasons: list[str] = []
    if e.fallback:
        reasons.append("no held-out rows")
    held_sign = 1 if m_f > 0 else (-1 if m_f < 0 else 0)
    if e.claim is not None and held_sign != e.claim:
        reasons.append(f"held-out effect {'is zero' if not held_sign else DIRECTIONS[held_sign]}, discovery "
                       f"says it {DIRECTIONS[e.claim]}")
    all_available = run.available is not None and e.n >= run.available
    if not run.n_ok(e.n):
        reasons.append(f"held-out n = {e.n} < {st.min_n}")
    if not len(ctl):
        reasons.append("no controls")
    for fam, f in e.families.items():
        if len(f["idx"]) < st.min_controls:
            reasons.append(f"{len(f['idx'])} {fam} controls < {st.min_controls}")
    test = None
    if e.families and np.isfinite(e.p):
        decider = max((f["p"], name) for name, f in e.families.items() if np.isfinite(f["p"]))[1]
        test = cs.ROBUST_T if e.families[decider]["robust"] else cs.PREDICTIVE_T
        if not q < st.alpha:
            reasons.append(f"q = {q:.3g} >= {st.alpha:g} (p = {e.p:.3g}, {test}; Benjamini-Hochberg over {m} "
                           "tests)")
    if len(ctl) and not e.lower_bound > 0:
        reasons.append(f"paired lower bound {e.lower_bound:.3g} <= 0: not beyond the controls' 95th percentile "
                       f"at {e.level:.1%} confidence" if np.isfinite(e.lower_bound)
                       else "too few controls for a 95th percentile")
    budget = e.result.pop("kl_budget", None)
    over_budget = budget is not None and bool(np.isfinite(kl) and kl > budget)
    if over_budget:
        reasons.append(f"mean side-effect KL {kl:.3g} nats > budget {budget:g}")
    strong = not reasons
    x_c = s * ctl
    threshold = max((float(cs.quantile_last(s * means[f["idx"]], cs.CONTROLS_QUANTILE)) for f in
                     e.families.values() if len(f["idx"])), default=np.nan)
    raw_threshold = s * threshold if np.isfinite(threshold) else np.nan
    med = float(np.median(ctl)) if len(ctl) else np.nan
    vals = e.values[:, 0]
    vals = vals[~np.isnan(vals)]
    side_vals = grid.side[grid.pairs(int(feat))]
    side_vals = side_vals[~np.isnan(side_vals)]
    out: dict[str, Any] = {
        "kind": e.kind,
        "strength": _r(e.strength),
        "split": "all (no held-out rows)" if e.fallback else "heldout",
        "mean_effect": _r(m_f),
        "ci": _interval(e.star[:, 0]),
        "baseline_mean": _r(base),
        "n": e.n,
        "n_is_all_available": bool(all_available),
        "direction": "promotes" if m_f >= 0 else "suppresses",
        "claimed_direction": None if e.claim is None else DIRECTIONS[e.claim],
        "sides": "one-sided" if e.claim is not None else "two-sided",
        "test": test,
        "p_value": None if not np.isfinite(e.p) else _r(e.p, 4),
        "q_value": None if np.isnan(q) else _r(q, 4),
        "paired_lower_bound": _r(e.lower_bound),
        "effect_over_baseline": _r(m_f / base) if has_base else None,
        "small_effect": bool(abs(m_f) < st.small_effect * abs(base)) if has_base else None,
        "effect_ratio": {"median": _r(m_f / med) if med else None,
                         "p95": _r(m_f / raw_threshold) if raw_threshold else None},
        "share_in_direction": _r(float((s * vals > 0).mean()), 4) if len(vals) else None,
        "kl": _r(kl),
        "kl_budget": budget,
        "controls": _controls_block(grid, e, s * m_f, threshold, raw_threshold, x_c),
        "placebo": _placebo_block(e.placebo, e.star.shape[0], run.settings.seed),
        "side_effect": {"mean": _r(kl), "ci": _interval(_resample_mean(side_vals, e.star.shape[0],
                                                                        run.settings.seed)),
                        "n": n_side} if n_side else None,
        "strong_causal": strong,
        "reasons": reasons,
        # the importance component: how far below alpha the p-value is (0 at alpha and above, 1 at p = 0), so
        # a null feature (p uniform) earns nothing 95% of the time; 0 when the held-out sign is not the claim or
        # a steering edit broke its side-effect budget
        "causal_score": (None if not np.isfinite(e.p) else 0.0 if over_budget
                         or (e.claim is not None and held_sign != e.claim) else _r(max(0.0, 1.0 - e.p / st.alpha), 4)),
    }
    if budget is None:  # not a steering entry
        del out["kl_budget"]
    edit = _edit_rms(grid, e)
    if edit is not None:
        out["edit_rms"] = edit
    pos = _positives(grid, e)
    if pos is not None:
        out["positives"] = pos
    e.result.update(out)


def _resample_mean(x: np.ndarray, B: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the mean of ``x`` (a side quantity: its own generator, so the test's resamples
    do not depend on whether records carry side effects)."""
    if len(x) < 2:
        return np.full(1, np.nan)
    rng = np.random.default_rng([seed, len(x)])
    return x[rng.integers(0, len(x), (B, len(x)))].mean(1)


def _placebo_block(pl: np.ndarray, B: int, seed: int) -> dict[str, Any] | None:
    pl = pl[~np.isnan(pl)]
    if not len(pl):
        return None
    return {"mean": _r(pl.mean()), "ci": _interval(_resample_mean(pl, B, seed)), "n": len(pl)}


def _controls_block(grid: SeriesGrid, e: Entry, x_f: float, threshold: float, raw_threshold: float,
                    x_c: np.ndarray) -> dict[str, Any]:
    if not len(x_c):
        return {"n": 0}
    means = e.means
    ctl_series = e.series[1:]
    types = sorted({str(grid.control_type[g]) for g in ctl_series})
    block: dict[str, Any] = {
        "n": len(x_c),
        "types": types,
        "mean": _r(means[1:].mean()),
        "median": _r(np.median(means[1:])),
        "threshold": _r(raw_threshold),
        "threshold_is": (f"95th percentile ({DIRECTIONS[e.sign]} side"
                         + ("; the higher family's)" if len(e.families) > 1 else ")")),
        "fraction_exceeded": _r(float(((x_f > x_c) + 0.5 * (x_f == x_c)).mean()), 4),
        "effects": [_r(v) for v in np.sort(means[1:])],
        "matched_on": _joined(grid.matched_on[ctl_series]),
    }
    fams: dict[str, Any] = {}
    for name, f in e.families.items():
        idx = f["idx"]
        series = e.series[idx]
        xs = e.sign * means[idx]
        fam: dict[str, Any] = {
            "n": len(idx),
            "types": sorted({str(grid.control_type[g]) for g in series}),
            "mean": _r(means[idx].mean()),
            "median": _r(np.median(means[idx])),
            "sd": _r(means[idx].std(ddof=1)) if len(idx) > 1 else None,
            "excess_kurtosis": _r(f["kurtosis"], 4),
            "threshold": _r(e.sign * cs.quantile_last(xs, cs.CONTROLS_QUANTILE)) if len(idx) else None,
            "test": (cs.ROBUST_T if f["robust"] else cs.PREDICTIVE_T) if np.isfinite(f["p"]) else None,
            "p_value": _r(f["p"], 4),
            "paired_lower_bound": _r(f["lower_bound"]),
            "matched_on": _joined(grid.matched_on[series]),
            "kl_median": _median_of(grid, series, grid.side),
            "effects": [_r(v) for v in np.sort(means[idx])],
        }
        tol = grid.match_tolerance[series]
        if np.isfinite(tol).any():
            fam["match_tolerance"] = _r(np.nanmax(tol))
        if grid.tolerance_widened[series].any():
            fam["tolerance_widened"] = True
        fams[name] = fam
    block["families"] = fams
    if any(f.get("tolerance_widened") for f in fams.values()):
        block["tolerance_widened"] = True
    implied = grid.implied[ctl_series]
    if implied.any():
        block["without_control_for"] = int(implied.sum())
        block["without_control_for_is"] = ("controls that name no control_for (the 0.2 form), counted for every "
                                           "feature of this kind and strength")
    return block


def _joined(values: np.ndarray) -> str | None:
    got = sorted({str(v) for v in values if v is not None})
    return "; ".join(got) if got else None


def _median_of(grid: SeriesGrid, series: np.ndarray, values: np.ndarray) -> float | None:
    per = np.array([_series_mean(grid, g, values) for g in series])
    per = per[~np.isnan(per)]
    return _r(np.median(per)) if len(per) else None


def _edit_rms(grid: SeriesGrid, e: Entry) -> dict[str, Any] | None:
    """RMS over prompts of the edit's norm at the edited position: the feature's and its controls' median."""
    feat = _series_mean(grid, e.series[0], grid.edit_sq)
    if not np.isfinite(feat):
        return None
    ctl = np.array([_series_mean(grid, g, grid.edit_sq) for g in e.series[1:]])
    ctl = np.sqrt(ctl[~np.isnan(ctl)])
    return {"feature": _r(np.sqrt(feat)), "controls_median": _r(np.median(ctl)) if len(ctl) else None}


def _positives(grid: SeriesGrid, e: Entry) -> dict[str, Any] | None:
    """The feature's mean effect on the held-out positives and the share of them moving in the tested
    direction (descriptive); None when the records do not give the prompts' class."""
    sl = grid.pairs(int(e.series[0]))
    cls = grid.positive[grid.prompt[sl]]
    if not (cls >= 0).any():
        return None
    eff = grid.effect[sl][cls == 1]
    return {"mean_effect": _r(eff.mean()) if len(eff) else None, "n": int(len(eff)),
            "share_in_direction": _r(float((e.sign * eff > 0).mean()), 4) if len(eff) else None}


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
        side = _pooled_side(run, fid)
        if side is not None:
            ev["side_effects"] = side
    return out


def _pooled_side(run: CausalRun, fid: str) -> dict[str, Any] | None:
    """The feature's held-out side effects, all kinds pooled (rows of one prompt averaged first)."""
    grid = run.grid
    series = [g for e in run.entries if e.feature_id == fid and not e.fallback for g in e.series[:1]]
    if not series:
        return None
    prompt = np.concatenate([grid.prompt[grid.pairs(int(g))] for g in series])
    side = np.concatenate([grid.side[grid.pairs(int(g))] for g in series])
    have = ~np.isnan(side)
    if not have.any():
        return None
    _, inv = np.unique(prompt[have], return_inverse=True)
    vals = np.bincount(inv, weights=side[have]) / np.bincount(inv)
    st = run.settings
    return {"mean": _r(vals.mean()), "ci": _interval(_resample_mean(vals, st.bootstrap, st.seed)),
            "n": len(vals), "measure": "side_effect_score of intervention records (held-out, all kinds pooled; "
                                       "per kind in each causal entry)"}


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
