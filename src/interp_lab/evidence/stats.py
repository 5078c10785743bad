"""Vectorized association statistics over the columns of a sparse matrix.

Every statistic counts the zeros of absent features (evidence.md rule 1):
a column's non-zero entries are ranked among themselves and the zeros form
one tie group placed between the negative and positive values, so AUROC and
Spearman are exact with ties and cost O(nnz log nnz) for all columns at once.

Also here: the scalar helpers the other layers share (``significant``, ``auroc``, ``rankdata``,
``class_cut``, two-sided normal and t p-values), the mean score of each column's top activations,
Benjamini-Hochberg q-values across features, and partial correlation after covariates with its
Fisher-z interval. Bootstrap resampling of these statistics is in ``evidence.bootstrap``.

Shapes: ``Xc`` is CSC [rows, features]; ``rows`` a boolean mask [rows];
``y`` the criterion score [rows] in [0, 1].
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from interp_lab.io.sparse import Compressed


@dataclass(frozen=True)
class ColumnStats:
    """Per-feature association on one set of rows; every array is [features]."""

    n: int  # rows used
    n_pos: float  # sum of scores (the number of positives for a binary criterion)
    binary: bool
    effect: np.ndarray  # signed: Somers' D = 2 AUROC - 1 (binary) or Spearman rho (graded)
    auroc: np.ndarray  # nan for a graded criterion
    spearman: np.ndarray  # nan for a binary criterion
    smd: np.ndarray  # standardized mean difference (binary); nan for graded
    r: np.ndarray  # Pearson correlation with the score (point-biserial when binary)
    p: np.ndarray  # two-sided p-value of the rank statistic
    fire_pos: np.ndarray  # score-weighted count of rows where the feature is non-zero
    fire_neg: np.ndarray  # (1 - score)-weighted count of the same
    mass_pos: np.ndarray  # score-weighted sum of |activation|
    mass_neg: np.ndarray
    nnz: np.ndarray  # rows where the feature is non-zero


_erfc = np.frompyfunc(math.erfc, 1, 1)


def significant(x: float | np.floating, digits: int = 6) -> float | None:
    """``x`` rounded to ``digits`` significant digits (None when not finite): small effects such as a
    change of 3e-6 in a next-token mass keep their precision, unlike rounding to decimal places."""
    x = float(x)
    return None if not math.isfinite(x) else float(f"{x:.{digits}g}")


def normal_two_sided_p(z: np.ndarray) -> np.ndarray:
    """2 * P(Z > |z|) for a standard normal, accurate far into the tail (erfc)."""
    z = np.asarray(z, dtype=np.float64)
    return _erfc(np.abs(z) / math.sqrt(2.0)).astype(np.float64)


def t_two_sided_p(t: np.ndarray, df: float) -> np.ndarray:
    """2 * P(T_df > |t|) (scipy.special, imported only when a t test is needed)."""
    from scipy import special

    return 2.0 * special.stdtr(df, -np.abs(t))


def rankdata(a: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties averaged), as ``scipy.stats.rankdata`` without importing scipy.stats."""
    a = np.asarray(a)
    order = np.argsort(a, kind="stable")
    sa = a[order]
    new = np.r_[True, sa[1:] != sa[:-1]]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(a)])
    ranks = np.empty(len(a))
    ranks[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return ranks


def auroc(x: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUROC of scores ``x`` for the ``positive`` rows against the rest (ties count half)."""
    positive = np.asarray(positive, dtype=bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if not n1 or not n0:
        return float("nan")
    r = rankdata(x)
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def is_binary(y: np.ndarray) -> bool:
    return bool(np.all((y == 0) | (y == 1)))


def class_cut(scores: np.ndarray) -> float:
    """Scores above this are the positive class: 0.5 for binary labels, else the median."""
    scores = np.asarray(scores, dtype=float)
    return 0.5 if is_binary(scores) else float(np.median(scores))


def _entries(Xc: Compressed, rows: np.ndarray):
    """(column, row, value) of the non-zero entries that fall in ``rows``."""
    F = Xc.shape[1]
    col = np.repeat(np.arange(F, dtype=np.int32), np.diff(Xc.indptr))
    keep = rows[Xc.indices]
    return col[keep], Xc.indices[keep], Xc.data[keep].astype(np.float64)


def _ranks(col: np.ndarray, v: np.ndarray, cnt: np.ndarray, n: int):
    """Midranks of the entries within their column (zeros counted), sorted by (column, value).

    Returns ``order`` (entry permutation), ``rank`` (for the sorted entries),
    the zeros' midrank per column and the tie-correction sum per column.
    """
    F = len(cnt)
    # sort by value (unstable is fine: equal values tie anyway), then stably by column (radix for uint16)
    by_value = np.argsort(v)
    col_key = col[by_value].astype(np.uint16 if F <= 65535 else np.uint32)
    order = by_value[np.argsort(col_key, kind="stable")]
    del by_value, col_key
    cs, vs = col[order], v[order]
    m = len(cs)
    start = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(cnt, out=start[1:])
    if m:
        new = np.empty(m, dtype=bool)
        new[0] = True
        new[1:] = (cs[1:] != cs[:-1]) | (vs[1:] != vs[:-1])
        gid = np.cumsum(new) - 1
        gfirst = np.flatnonzero(new)
        gsize = np.diff(np.append(gfirst, m))
        gcol = cs[gfirst]
        pos_first = gfirst - start[gcol]  # 0-based position of the group inside its column
        mid_nz = pos_first + (gsize + 1) / 2.0
        rank = mid_nz[gid]
        zeros = n - cnt
        rank = rank + np.where(vs > 0, zeros[cs], 0)
        ties = np.bincount(gcol, weights=gsize.astype(np.float64) ** 3 - gsize, minlength=F)
    else:
        rank = np.zeros(0)
        ties = np.zeros(F)
    zeros = (n - cnt).astype(np.float64)
    neg = np.bincount(col, weights=(v < 0).astype(np.float64), minlength=F)
    zero_mid = neg + (zeros + 1) / 2.0
    ties = ties + zeros**3 - zeros
    return order, rank, zero_mid, ties


BLOCK_NNZ = 1 << 20


def column_stats(Xc: Compressed, rows: np.ndarray, y: np.ndarray) -> ColumnStats:
    """Association of every column with the score ``y`` over the rows in ``rows``.

    Columns are processed in blocks of about ``BLOCK_NNZ`` entries, which
    bounds the temporary memory and keeps the working set in cache.
    """
    F = Xc.shape[1]
    ry = None
    if not is_binary(y[rows]):
        ry = np.zeros(len(y))
        ry[rows] = rankdata(y[rows])
    if Xc.nnz <= BLOCK_NNZ:
        return _column_stats(Xc, rows, y, ry)
    cuts = np.searchsorted(Xc.indptr, np.arange(BLOCK_NNZ, Xc.nnz, BLOCK_NNZ), side="right")
    bounds = np.unique(np.r_[0, np.clip(cuts, 1, F), F])
    # numpy releases the GIL in the sorts and reductions, so blocks run in parallel threads
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        parts = list(pool.map(lambda ab: _column_stats(Xc.slice_major(ab[0], ab[1]), rows, y, ry),
                              zip(bounds[:-1], bounds[1:])))
    first = parts[0]
    arrays = {k: np.concatenate([getattr(p, k) for p in parts])
              for k, v in first.__dict__.items() if isinstance(v, np.ndarray)}
    return ColumnStats(n=first.n, n_pos=first.n_pos, binary=first.binary, **arrays)


def _column_stats(Xc: Compressed, rows: np.ndarray, y: np.ndarray, ry: np.ndarray | None) -> ColumnStats:
    F = Xc.shape[1]
    n = int(rows.sum())
    ysub = y[rows]
    binary = ry is None
    col, r, v = _entries(Xc, rows)
    yr = y[r]
    bc = lambda w: np.bincount(col, weights=w, minlength=F)  # noqa: E731
    cnt = np.bincount(col, minlength=F).astype(np.float64)
    n1 = float(ysub.sum())
    n0 = n - n1
    S, S1, Q = bc(v), bc(v * yr), bc(v * v)
    absv = np.abs(v)
    fire_pos = bc(yr)
    mass_pos = bc(absv * yr)
    out = dict(
        n=n, n_pos=n1, binary=binary,
        fire_pos=fire_pos, fire_neg=cnt - fire_pos,
        mass_pos=mass_pos, mass_neg=bc(absv) - mass_pos, nnz=cnt,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        # Pearson r with the score (point-biserial for 0/1 scores)
        sy, syy = float(ysub.sum()), float((ysub * ysub).sum())
        cov = S1 - S * sy / n
        var_x = Q - S * S / n
        var_y = syy - sy * sy / n
        r_xy = np.where((var_x > 0) & (var_y > 0), cov / np.sqrt(var_x * var_y), 0.0)
        order, rank, zero_mid, ties = _ranks(col, v, cnt, n)
        if binary:
            Q1 = bc(v * v * yr)
            m1, m0 = S1 / n1, (S - S1) / n0
            v1 = (Q1 - n1 * m1 * m1) / max(n1 - 1, 1)
            v0 = ((Q - Q1) - n0 * m0 * m0) / max(n0 - 1, 1)
            pooled = np.sqrt(((n1 - 1) * v1 + (n0 - 1) * v0) / max(n - 2, 1))
            smd = np.where(pooled > 0, (m1 - m0) / pooled, 0.0)
            R1 = np.bincount(col[order], weights=rank * yr[order], minlength=F) + (n1 - fire_pos) * zero_mid
            U = R1 - n1 * (n1 + 1) / 2.0
            auroc = U / (n1 * n0) if n1 > 0 and n0 > 0 else np.full(F, 0.5)
            var_u = n1 * n0 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
            z = np.where(var_u > 0, (U - n1 * n0 / 2.0) / np.sqrt(var_u), 0.0)
            p = normal_two_sided_p(z)
            effect = 2.0 * auroc - 1.0
            spearman = np.full(F, np.nan)
        else:
            ry_e = ry[r]
            ry_tot, ry2_tot = float(ry[rows].sum()), float((ry[rows] ** 2).sum())
            zeros = n - cnt
            sxy = np.bincount(col[order], weights=rank * ry_e[order], minlength=F) + zero_mid * (ry_tot - bc(ry_e))
            sxx = np.bincount(col[order], weights=rank * rank, minlength=F) + zeros * zero_mid**2
            mr = (n + 1) / 2.0
            num = sxy - n * mr * (ry_tot / n)
            den = np.sqrt((sxx - n * mr * mr) * (ry2_tot - ry_tot**2 / n))
            spearman = np.where(den > 0, num / den, 0.0)
            rho = np.clip(spearman, -0.999999, 0.999999)
            t = rho * np.sqrt((n - 2) / (1 - rho * rho))
            p = np.where(den > 0, t_two_sided_p(t, max(n - 2, 1)), 1.0)
            effect = spearman
            auroc = np.full(F, np.nan)
            smd = np.full(F, np.nan)
    return ColumnStats(effect=effect, auroc=auroc, spearman=spearman, smd=smd, r=r_xy, p=p, **out)


@dataclass
class TopActivations:
    """Per column: the mean score of its ``m`` highest-activating rows (rows where it is at most zero never
    count as activating; a column firing on fewer than ``m`` rows has its missing places filled at the
    rows' mean score, so that a feature firing once is not a perfect one), and a z test of that mean
    against ``m`` rows drawn at random."""

    m: int
    base: float  # the rows' mean score
    mean: np.ndarray  # [F]
    firing: np.ndarray  # [F] rows where the column is above zero (of the rows asked for)
    z: np.ndarray
    p: np.ndarray


def top_activation_stats(Xc: Compressed, rows: np.ndarray, y: np.ndarray, m: int = 20) -> TopActivations:
    """``TopActivations`` of every column over the rows in ``rows`` (a [rows] bool mask)."""
    F = Xc.shape[1]
    ys = y[rows]
    n, base = int(rows.sum()), float(ys.mean())
    sd = float(ys.std(ddof=1)) if n > 1 else 0.0
    col, r, v = _entries(Xc, rows)
    up = v > 0
    col, r, v = col[up], r[up], v[up]
    firing = np.bincount(col, minlength=F)
    # entries by column, then by value from the highest: a stable sort by column of the value-descending order
    by_value = np.argsort(-v, kind="stable")
    order = by_value[np.argsort(col[by_value], kind="stable")]
    start = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(firing, out=start[1:])
    cs = col[order]
    top = (np.arange(len(order)) - start[cs]) < m
    took = np.minimum(firing, m)
    total = np.bincount(cs[top], weights=y[r[order][top]], minlength=F) + (m - took) * base
    mean = total / m
    # m rows drawn without replacement from the n: the standard error of their mean
    se = sd / np.sqrt(m) * np.sqrt(max(n - m, 0) / max(n - 1, 1)) if m < n else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (mean - base) / se, 0.0)
    return TopActivations(m=m, base=base, mean=mean, firing=firing, z=z, p=normal_two_sided_p(z))


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (monotone, capped at 1)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def partial_correlation(x: np.ndarray, y: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, int]:
    """Correlation of each column of ``x`` [n, k] with ``y`` [n] after regressing out ``C`` [n, c].

    ``C`` must include the intercept. Returns the partial correlations [k]
    and the residual degrees of freedom (n - rank(C) - 1) for tests.
    """
    Q, R = np.linalg.qr(C)
    keep = np.abs(np.diag(R)) > 1e-10 * max(1.0, float(np.abs(R).max()))
    Q = Q[:, keep]
    ry = y - Q @ (Q.T @ y)
    rx = x - Q @ (Q.T @ x)
    num = rx.T @ ry
    den = np.sqrt((rx * rx).sum(0) * float(ry @ ry))
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = np.where(den > 0, num / den, 0.0)
    return pr, len(y) - int(keep.sum()) - 1


def fisher_ci(r: np.ndarray, df: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fisher-z interval and two-sided p-value of correlations with ``df`` residual degrees of freedom."""
    zc = NormalDist().inv_cdf(0.5 + level / 2)
    rr = np.clip(r, -0.999999, 0.999999)
    z = np.arctanh(rr)
    se = 1.0 / np.sqrt(max(df - 1, 1))
    lo, hi = np.tanh(z - zc * se), np.tanh(z + zc * se)
    t = rr * np.sqrt(max(df - 1, 1) / (1 - rr * rr))
    p = t_two_sided_p(t, max(df - 1, 1))
    return lo, hi, p
