"""The report fields of one causal entry (FORMATS.md): verdict and reasons, scale, controls per family.

``entry_fields`` turns a judged ``causal.Entry`` (its p-value and paired bound per control family) and its
Benjamini-Hochberg q into the dict a card carries; ``pooled_side_effects`` is a feature's side effects over
all its kinds. Everything read from the ``SeriesGrid`` the entry was cut from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interp_lab.evidence import causal_stats as cs
from interp_lab.evidence.intervention_table import SeriesGrid
from interp_lab.evidence.stats import significant

if TYPE_CHECKING:
    from interp_lab.evidence.causal import CausalRun, Entry

DIRECTIONS = {1: "promotes", -1: "suppresses"}


def _r(x: Any, digits: int = 6) -> float | None:
    return None if x is None else significant(x, digits)


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


def entry_fields(run: CausalRun, e: Entry, q: float, m: int) -> None:
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
    budget = e.kl_budget
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


def pooled_side_effects(run: CausalRun, fid: str) -> dict[str, Any] | None:
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
