"""Controls matched to a feature's edit (evidence.md rule 7): the numbers, without a model.

- The **realised edit** of a set-edit (ablate, mean_ablate, clamp, patch) on one prompt is the L2 norm of
  the change it makes to the residual stream at the edited position: |new value - value| times the norm
  of the feature's write vector in residual space. Its RMS over the discovery prompts is what unit and
  direction controls are matched on (``edit_rms``).
- Matching is on the ratio to the feature's: within tolerance ``t`` means a ratio in [1/(1+t), 1+t]
  (``within``), symmetric in log scale so that widening never admits dead units (ratio 0). A pool that
  holds fewer than n candidates widens ``t`` step by step (``TOLERANCES``) and says so; it never returns
  fewer than asked while the space has them.
- Random directions are drawn from the activation distribution at the hook: Gaussian combinations of the
  centred discovery activations (a draw from N(0, Sigma), never isotropic), normalized.
- Label-permuted placebos refit a contrast method on permuted discovery labels.
- A steering control's strength is searched (secant steps in log strength, kept inside a bracket) until its
  mean side-effect KL is within tolerance of the feature's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.interventions.features import DirectionSpace, Target
from interp_lab.interventions.plan import EditPlan, seed_of, short
from interp_lab.schemas.feature_id import format_id, parse_feature_id

if TYPE_CHECKING:
    from interp_lab.interventions.run import Experiment

SET_KINDS = ("ablate", "mean_ablate", "clamp_up", "clamp_down", "patch")
TOLERANCES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # widening steps after the starting tolerance
DRAWS = 512  # random directions drawn per batch while looking for matched ones
MAX_BATCHES = 8  # batches tried at one tolerance before it is widened


def within(ratio: np.ndarray | float, tol: float | None) -> np.ndarray:
    """Whether each ratio to the feature's is within ``tol`` (None: any non-zero ratio)."""
    r = np.asarray(ratio, dtype=float)
    if tol is None:
        return np.isfinite(r) & (r > 0)
    return (r >= 1.0 / (1.0 + tol) - 1e-12) & (r <= 1.0 + tol + 1e-12)


def ratio_tolerance(ratio: float) -> float:
    """The smallest tolerance ``ratio`` is within."""
    return float(max(ratio, 1.0 / ratio) - 1.0) if ratio > 0 else float("inf")


def set_value(v: np.ndarray, kind: str) -> np.ndarray:
    """[k] the value a set-edit of ``kind`` gives each feature, from its discovery values ``v`` [m, k]
    (ablate: 0; mean_ablate: the mean; clamp_up / clamp_down: the 99th / 1st percentile)."""
    if kind == "ablate":
        return np.zeros(v.shape[1])
    if kind == "mean_ablate":
        return v.mean(0)
    if kind == "clamp_up":
        return np.quantile(v, 0.99, axis=0)
    if kind == "clamp_down":
        return np.quantile(v, 0.01, axis=0)
    raise ValueError(f"no single value for {kind}")


def patch_pairs(positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(negatives, sources): each negative prompt patched with the value of a positive one, in turn."""
    neg, pos = np.flatnonzero(~positive), np.flatnonzero(positive)
    return neg, pos[np.arange(len(neg)) % max(len(pos), 1)] if len(pos) else neg[:0]


def edit_rms(v: np.ndarray, kind: str, norms: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """[k] RMS over the reference prompts of the realised edit of each feature: ``v`` [m, k] their values
    there, ``norms`` [k] their write vectors' residual norms, ``positive`` [m] the class (patch)."""
    v = np.asarray(v, dtype=np.float64)
    if kind == "patch":
        neg, src = patch_pairs(positive)
        delta = v[src] - v[neg] if len(src) else np.zeros((1, v.shape[1]))
    else:
        delta = set_value(v, kind)[None] - v
    return np.sqrt((delta ** 2).mean(0)) * norms


@dataclass
class Matched:
    """Controls found for one feature: which, and how closely they match."""

    chosen: np.ndarray  # unit indices [n], or unit direction vectors [n, d]
    tolerance: float | None  # the tolerance they are within (None: unbounded, the whole space)
    widened: bool  # the starting tolerance held fewer than n


def pick_units(rms: np.ndarray, index: int, n: int, start: float, rng: np.random.Generator) -> Matched:
    """``n`` other units of the space drawn at random among those whose edit RMS is within the smallest
    tolerance (from ``start`` on) that holds ``n`` of them; every other non-dead unit when even the widest
    does not (the tolerance is then None)."""
    mine = float(rms[index])
    with np.errstate(divide="ignore", invalid="ignore"):  # a feature that never moves: matched by dead units
        ratio = rms / mine if mine > 0 else np.where(rms > 0, np.inf, 1.0)
    others = np.arange(len(rms)) != index
    for tol in (start, *(t for t in TOLERANCES if t > start), None):
        pool = np.flatnonzero(within(ratio, tol) & others)
        if len(pool) >= n or tol is None:
            pick = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))
            return Matched(pick, tol, tol != start)
    raise AssertionError("unreachable")


def activation_directions(x_ref: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, d] unit directions drawn from the activation distribution of ``x_ref`` [m, d]: Gaussian
    combinations of its centred rows (a draw from N(0, covariance)), normalized."""
    xc = x_ref - x_ref.mean(0)
    v = rng.normal(size=(n, len(xc))) @ xc
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def matched_directions(x_ref: np.ndarray, rms_of: Callable[[np.ndarray], np.ndarray], target: float, n: int,
                       start: float, rng: np.random.Generator) -> Matched:
    """``n`` directions drawn from the activation distribution whose edit RMS (``rms_of`` [k, d] -> [k]) is
    within tolerance of ``target``: batches are drawn until ``n`` match, the tolerance widened after
    ``MAX_BATCHES`` batches fall short (unbounded at last: any direction)."""
    got: list[np.ndarray] = []
    ratios: list[np.ndarray] = []
    for tol in (start, *(t for t in TOLERANCES if t > start), None):
        # what earlier batches drew is kept: at a wider tolerance more of it matches
        keep = [v[within(r, tol)] for v, r in zip(got, ratios)]
        if sum(len(k) for k in keep) < n:
            for _ in range(MAX_BATCHES):
                v = activation_directions(x_ref, DRAWS, rng)
                r = rms_of(v) / target if target > 0 else np.ones(len(v))
                got.append(v)
                ratios.append(r)
                keep.append(v[within(r, tol)])
                if sum(len(k) for k in keep) >= n:
                    break
        pool = np.concatenate(keep)
        if len(pool) >= n:
            return Matched(pool[:n], tol, tol != start)
    raise AssertionError("unreachable: with no tolerance every draw matches")


def permuted_directions(fit: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, positive: np.ndarray,
                        n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, d] unit directions of the contrast method ``fit(x, labels)`` refitted on ``n`` random
    permutations of the discovery labels ``positive`` (placebos: the method's own reach on this data
    when the labels carry nothing)."""
    out = np.empty((n, x.shape[1]))
    for k in range(n):
        w = fit(x, rng.permutation(positive))
        out[k] = w / (np.linalg.norm(w) or 1.0)
    return out


def search_strength(kl_at: Callable[[float], float], target: float, start: float, tol: float,
                    max_evals: int = 12) -> tuple[float, float, float]:
    """A strength whose mean side-effect KL (``kl_at``) is within ``tol`` of ``target``: secant steps in
    log strength / log KL (KL grows about as strength squared where small), kept inside the bracket found
    so far (bisection when a step leaves it). Returns (strength, its KL, the tolerance it is within): the
    closest tried when ``max_evals`` do not reach ``tol``."""
    s, k = start, kl_at(start)
    tried = [(s, k)]
    lo = hi = None  # strengths known below / above the target
    slope = 2.0
    for _ in range(max_evals - 1):
        if k > 0 and within(k / target, tol):
            break
        if k < target:
            lo = (s, k) if lo is None or s > lo[0] else lo
        else:
            hi = (s, k) if hi is None or s < hi[0] else hi
        if lo and hi and lo[1] > 0 and hi[1] > lo[1]:
            slope = np.log(hi[1] / lo[1]) / np.log(hi[0] / lo[0])
        step = np.log(target / k) / slope if k > 0 else np.log(4.0)
        nxt = s * float(np.exp(np.clip(step, -np.log(16.0), np.log(16.0))))
        if lo and hi and not lo[0] < nxt < hi[0]:
            nxt = float(np.sqrt(lo[0] * hi[0]))
        s, k = nxt, kl_at(nxt)
        tried.append((s, k))
    s, k = min(tried, key=lambda sk: abs(np.log(sk[1] / target)) if sk[1] > 0 else np.inf)
    return s, k, ratio_tolerance(k / target)


# ---------------------------------------------------------------------- the controls of one target


def set_controls(ex: Experiment, target: Target, kind: str) -> list[EditPlan]:
    """Controls of a set-edit: other units of the target's space (a direction: random directions drawn from
    the activation distribution at its hook) whose realised edit RMS on discovery prompts is within
    ``match_tolerance`` of the target's, widened step by step until ``n_controls`` are found."""
    n, tol0, space = ex.settings.n_controls, ex.settings.match_tolerance, target.space
    mine = float(ex.ref_stats.edit_rms(space, kind)[target.index])
    rng = np.random.default_rng(seed_of(ex.settings.seed, f"{target.feature_id}:{kind}"))
    if space.kind == "D" or space.size <= 1:
        hook, layer = target.hook, space.layer
        got = matched_directions(ex.ref_stats.acts[hook], lambda v: ex.ref_stats.direction_rms(hook, kind, v), mine,
                                 n, tol0, rng)
        rnd = DirectionSpace(hook, layer, got.chosen,
                             [format_id(layer, "mdir", f"{short(target.feature_id + kind)}_{k}") for k in range(n)])
        plans = [(rnd, k) for k in range(rnd.size)]
        ctype, what = "random_direction", "directions drawn from the activation distribution"
    else:
        got = pick_units(ex.ref_stats.edit_rms(space, kind), target.index, n, tol0, rng)
        plans = [(space, int(j)) for j in got.chosen]
        ctype, what = "random_feature", "units of the same space"
    band = f"within {got.tolerance:.0%}" if got.tolerance is not None else "unbounded (every other live unit)"
    matched_on = f"edit RMS {band} ({what}; from {tol0:.0%}, widened)" if got.widened else \
        f"edit RMS {band} ({what})"
    return [EditPlan(sp.feature_id(j), sp, j, kind, None, ctype, matched_on, got.tolerance, got.widened)
            for sp, j in plans]


def permuted_controls(ex: Experiment, target: Target, kind: str, strength: float | None) -> list[EditPlan]:
    """For a contrast direction (``D0`` difference of means, ``D1`` logistic probe, as ``contrast`` names
    them): its method refitted on ``n_controls`` permutations of the discovery labels at the same hook, unit
    norm, edited the same way (steering: at the feature's strength). Other features have none."""
    from interp_lab.interventions.contrast import METHODS, fit_method

    if target.space.kind != "D":
        return []
    try:
        index = parse_feature_id(target.feature_id)[2]
    except UsageError:
        return []
    method = {i: m for m, i in METHODS.items()}.get(index)
    if method is None:
        return []
    fid, hook, layer = target.feature_id, target.hook, target.space.layer
    if fid not in ex.permuted:
        rng = np.random.default_rng(seed_of(ex.settings.seed, f"{fid}:permuted"))
        v = permuted_directions(lambda x, y: fit_method(method, x, y), ex.ref_stats.acts[hook],
                                ex.ref_stats.positive, ex.settings.n_controls, rng)
        ex.permuted[fid] = DirectionSpace(hook, layer, v, [format_id(layer, "pdir", f"{short(fid)}_{k}") for k in range(len(v))])
    space = ex.permuted[fid]
    how = "same norm and strength" if kind == "steer" else "same norm and edit"
    return [EditPlan(space.feature_id(k), space, k, kind, strength, "permuted_label",
                     f"permuted discovery labels ({method.replace('_', ' ')} refitted), {how}", None, False,
                     strength if kind == "steer" else None) for k in range(space.size)]
