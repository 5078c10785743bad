"""Leave-one-out calibration of the causal rule on a report's own controls (``interp-lab calibrate-causal``).

Each control of each card x kind entry is judged as if it were the feature: against the other controls
of its family (and the other family in full, for a contrast direction), in its card's discovery
direction, with its own prompts resampled jointly with theirs; its p-value replaces its card's in the
report's Benjamini-Hochberg family (the other entries keep theirs), and it is strong when (a) q < alpha,
(b) the paired lower bound is above zero, (c) it has enough prompts, and its held-out sign is the
claimed one. Controls are exchangeable with one another, so the share that comes out strong estimates
the rule's false-positive rate on this model and criterion. The side-effect budget is not applied
(it concerns the edit's cost, not the statistics), nor is ``min_controls`` (a control left out has one
control fewer than its card). Entries whose own controls are fewer than ``min_controls`` (the card
could never be strong) are left out and listed.

The interval is a cluster bootstrap over entries (card x kind): controls of one entry share prompts and
a reference set, so they are not independent tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_lab.evidence import causal_stats as cs
from interp_lab.evidence.causal import CausalRun, Entry, family_test


@dataclass
class ControlTests:
    """Every control test of a run: its entry (cluster) and verdict."""

    entry: np.ndarray  # [N] index into run.entries
    family: np.ndarray  # [N] object
    control_id: np.ndarray  # [N] object
    p: np.ndarray
    q: np.ndarray
    lower_bound: np.ndarray
    strong: np.ndarray  # [N] bool
    excluded: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.strong)


def _others(J: int) -> np.ndarray:
    """[J, J - 1]: for each j, the indices of the others."""
    full = np.broadcast_to(np.arange(J), (J, J))
    return full[~np.eye(J, dtype=bool)].reshape(J, J - 1)


def _entry_tests(run: CausalRun, e: Entry) -> dict[str, np.ndarray] | None:
    """p, lower bound and (c)/sign verdicts of every control of ``e`` judged as a candidate."""
    means = e.means
    star = e.star  # [B, 1 + k]
    ps, lbs, n_ok, sign_ok, fams, ids = [], [], [], [], [], []
    for fam, f in e.families.items():
        idx = f["idx"]
        J = len(idx)
        if J < 2:
            continue
        m_j = means[idx]
        sign = np.full(J, e.claim) if e.claim is not None else np.where(m_j < 0, -1, 1)
        x_f = sign * m_j
        f_star = sign[:, None] * star[:, idx].T  # [J, B]
        own = idx[_others(J)]  # [J, J - 1]
        x_c = sign[:, None] * means[own]
        c_star = sign[:, None, None] * np.moveaxis(star[:, own], 0, 1)  # [J, B, J - 1]
        p, _, _, lb = family_test(x_f, x_c, f_star, c_star, e.claim is None, e.level)
        for other, g in e.families.items():
            if other == fam or len(g["idx"]) < 1:
                continue
            oi = g["idx"]
            xo = sign[:, None] * means[oi][None, :]
            co = sign[:, None, None] * star[:, oi][None, :, :]
            po, _, _, lbo = family_test(x_f, xo, f_star, co, e.claim is None, e.level)
            p, lb = np.fmax(p, po), np.fmin(lb, lbo)
        n = (~np.isnan(e.values[:, idx])).sum(0)
        ps.append(p)
        lbs.append(lb)
        n_ok.append(np.array([run.n_ok(int(v)) for v in n]))
        sign_ok.append(np.ones(J, dtype=bool) if e.claim is None else np.sign(m_j) == e.claim)
        fams.append(np.full(J, fam, dtype=object))
        ids.append(np.array([str(run.grid.feature_id[g]) for g in e.series[idx]], dtype=object))
    if not ps:
        return None
    cat = np.concatenate
    return {"p": cat(ps), "lower_bound": cat(lbs), "n_ok": cat(n_ok), "sign_ok": cat(sign_ok), "family": cat(fams),
            "control_id": cat(ids)}


def control_tests(run: CausalRun) -> ControlTests:
    """Judge every control of the run's entries as a candidate (module docstring)."""
    st = run.settings
    entry_p = np.array([e.p for e in run.entries], dtype=np.float64)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("entry", "family", "control_id", "p", "q", "lower_bound",
                                                         "strong")}
    excluded = []
    for i, e in enumerate(run.entries):
        short = {fam: len(f["idx"]) for fam, f in e.families.items() if len(f["idx"]) < st.min_controls}
        if short or not e.families:
            if e.families:
                excluded.append({"feature_id": e.feature_id, "key": e.key, "controls": short,
                                 "why": f"fewer than {st.min_controls} controls in a family"})
            continue
        got = _entry_tests(run, e)
        if got is None:
            continue
        J = len(got["p"])
        family_p = np.tile(entry_p, (J, 1))
        family_p[:, i] = got["p"]  # the control replaces its card's test; the others keep theirs
        q = cs.bh_rows(family_p)[:, i]
        strong = cs.strong_verdict(q, got["lower_bound"], got["sign_ok"], got["n_ok"], st.alpha)
        for k, v in (("entry", np.full(J, i)), ("family", got["family"]), ("control_id", got["control_id"]),
                     ("p", got["p"]), ("q", q), ("lower_bound", got["lower_bound"]), ("strong", strong)):
            cols[k].append(v)
    empty = {"entry": np.int64, "strong": bool, "family": object, "control_id": object}
    arrays = {k: np.concatenate(v) if v else np.zeros(0, dtype=empty.get(k, np.float64)) for k, v in cols.items()}
    return ControlTests(excluded=excluded, **arrays)


def cluster_interval(strong: np.ndarray, cluster: np.ndarray, B: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the share ``strong.mean()`` from resampling whole clusters."""
    if not len(strong):
        return np.nan, np.nan
    _, c = np.unique(cluster, return_inverse=True)
    C = int(c.max()) + 1
    hits = np.bincount(c, weights=strong.astype(np.float64), minlength=C)
    size = np.bincount(c, minlength=C).astype(np.float64)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, C, (B, C))
    counts = np.bincount((draw + (np.arange(B) * C)[:, None]).ravel(), minlength=B * C).reshape(B, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = (counts @ hits) / (counts @ size)
    a = (1 - level) / 2
    lo, hi = np.nanquantile(rates, [a, 1 - a])
    return float(lo), float(hi)
