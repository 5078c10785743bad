"""Steering under a side-effect budget, and steering controls matched on side-effect KL (evidence.md rule 7).

The strength is chosen on calibration prompts: among the grid's strengths (extended downwards by
halving while none fits) whose mean next-token KL on unrelated prompts is at most ``kl_budget``, the
one with the largest gain in the feature's discovery direction. Its dose-response (gain and KL at every
strength tried, the feature's and the median of a few steering controls') is returned with it. Steering
controls are random directions drawn from the activation distribution at the hook, each steered at the
strength (searched) whose mean side-effect KL is within ``kl_tolerance`` of the feature's at its chosen
strength; their size is recorded (``edit_norm``), not matched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interp_lab.evidence.stats import significant
from interp_lab.interventions import controls as ctl
from interp_lab.interventions.batches import scores
from interp_lab.interventions.features import DirectionSpace, Target
from interp_lab.interventions.plan import EditPlan, seed_of
from interp_lab.schemas.feature_id import format_id

if TYPE_CHECKING:
    from interp_lab.interventions.run import Experiment

HALVINGS = 4  # how far below the grid's smallest strength to look for one within the budget


def dose(ex: Experiment, plan: EditPlan, claim: int) -> tuple[float, float | None]:
    """(gain in the claimed direction, mean side-effect KL) of a steering plan on calibration prompts."""
    key = plan.key()
    if key not in ex.calib_change:
        ex.calib_change[key] = float((scores(ex.calib, ex.scorer, ex.edits_for(plan, "calib")) - ex.base_calib).mean())
    kl = float(ex.side_kl(plan).mean()) if ex.side is not None else None
    return claim * ex.calib_change[key], kl


def calibrate(ex: Experiment, target: Target) -> tuple[float, dict[str, Any]]:
    """The steering strength under the budget and its dose-response (``InterventionRun.strengths``): the
    smallest strength tried, ``within_budget`` false, when none fits."""
    claim, budget = ex.claim(target), ex.settings.kl_budget
    tried: dict[float, tuple[float, float | None]] = {}

    def at(s: float) -> tuple[float, float | None]:
        tried[s] = dose(ex, EditPlan(target.feature_id, target.space, target.index, "steer", s), claim)
        return tried[s]

    grid = sorted(ex.settings.strengths)
    for s in grid:
        at(s)
    within: bool | None = None
    if ex.side is None:  # nothing to measure side effects on: no budget applies
        fits = list(tried)
    else:
        fits = [s for s, (_, kl) in tried.items() if kl <= budget]
        s = grid[0]
        for _ in range(0 if fits else HALVINGS):
            s /= 2
            if at(s)[1] <= budget:
                fits.append(s)
                break
        within = bool(fits)
    chosen = max(fits, key=lambda s: (tried[s][0], -s)) if fits else min(tried)
    pool = steer_pool(ex, target)
    k = min(ex.settings.dose_controls, pool.size)
    rows = []
    for s in sorted(tried):
        got = np.array([dose(ex, EditPlan(pool.feature_id(j), pool, j, "steer", s), claim) for j in range(k)],
                       dtype=float).reshape(k, 2)
        gain, kl = tried[s]
        rows.append({"strength": significant(s, 7), "gain": significant(gain, 7),
                     "kl": None if kl is None else significant(kl, 7),
                     "controls_gain_median": significant(np.median(got[:, 0]), 7) if k else None,
                     "controls_kl_median": significant(np.median(got[:, 1]), 7) if k and kl is not None else None})
    sign = "+" if claim > 0 else "-"
    rule = (f"largest calibration gain in the discovery direction ({sign}) among the strengths whose mean "
            f"next-token KL on {len(ex.side)} unrelated prompts is at most {budget:g} nats (the grid halved "
            f"downwards, up to {HALVINGS} times, while none is)" if ex.side is not None else
            f"largest calibration gain in the discovery direction ({sign}); no unrelated prompts, no side-effect "
            "budget")
    if within is False:
        rule += f"; none was: the smallest strength tried, {chosen:g}, costs {tried[chosen][1]:.3g} nats"
    return float(chosen), {
        "chosen": float(chosen), "rule": rule, "kl_budget": budget, "within_budget": within,
        "claimed_direction": claim, "dose_response": rows, "dose_controls": k,
        "calibration_prompts": len(ex.calib), "side_effect_prompts": len(ex.side) if ex.side is not None else 0,
        # the 0.3 keys, kept for their readers
        "calibration_gains": {f"{r['strength']:g}": r["gain"] for r in rows},
        "calibration_side_effects": {f"{r['strength']:g}": r["kl"] for r in rows if r["kl"] is not None},
    }


def steer_pool(ex: Experiment, target: Target) -> DirectionSpace:
    """``n_controls`` random directions from the activation distribution at the target's hook (one set per
    hook, shared by every target there)."""
    hook = target.hook
    if hook not in ex.steer_pools:
        rng = np.random.default_rng(seed_of(ex.settings.seed, hook))
        v = ctl.activation_directions(ex.ref_stats.acts[hook], ex.settings.n_controls, rng)
        layer = target.space.layer
        ex.steer_pools[hook] = DirectionSpace(hook, layer, v, [format_id(layer, "rdir", k) for k in range(len(v))])
    return ex.steer_pools[hook]


def steer_controls(ex: Experiment, target: Target, strength: float) -> list[EditPlan]:
    """The pool's directions, each at the strength whose mean side-effect KL is within ``kl_tolerance`` of
    the feature's at ``strength`` (``match_tolerance`` is the tolerance reached, ``tolerance_widened`` when
    the search could not reach ``kl_tolerance``)."""
    pool, tol = steer_pool(ex, target), ex.settings.kl_tolerance
    if ex.side is None:
        return [EditPlan(pool.feature_id(k), pool, k, "steer", strength, "random_direction",
                         "the same strength (no unrelated prompts to match side-effect KL on)", None, True, strength)
                for k in range(pool.size)]
    goal = float(ex.side_kl(EditPlan(target.feature_id, target.space, target.index, "steer", strength)).mean())
    out = []
    for k in range(pool.size):
        def kl_at(s: float, k: int = k) -> float:
            return float(ex.side_kl(EditPlan(pool.feature_id(k), pool, k, "steer", s)).mean())

        if goal > 0:
            s, _, reached = ctl.search_strength(kl_at, goal, strength, tol)
        else:  # the feature changes nothing measurable there: its own strength
            s, reached = strength, float("inf")
        ok = reached <= tol + 1e-9
        out.append(EditPlan(pool.feature_id(k), pool, k, "steer", float(s), "random_direction",
                            f"side-effect KL within {tol:.0%} (strength searched)"
                            if ok else f"side-effect KL as close as the search reached (target {tol:.0%})",
                            tol if ok else (significant(reached, 4) if np.isfinite(reached) else None),
                            not ok, strength))
    return out
