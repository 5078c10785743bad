"""Bootstrap resampling of the association statistics (evidence.md rule 3: intervals by resampling).

``bootstrap_weights`` draws the resampling counts (whole prompts at a time when rows share one),
``bootstrap_stats`` scores every resample of a few columns at once with the zeros kept as one tie
group (as ``stats.column_stats`` does), ``bootstrap_in_chunks`` streams many resamples through it in
threads, and ``percentile_ci`` turns the replicates into intervals.

Shapes: ``Xc`` is CSC [rows, features]; ``row_idx`` the rows resampled [n]; ``W`` resampling counts [B, n].
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from interp_lab.evidence.stats import is_binary, rankdata
from interp_lab.io.sparse import Compressed


def bootstrap_weights(n: int, B: int, rng: np.random.Generator, groups: np.ndarray | None = None) -> np.ndarray:
    """[B, n] resampling counts of an ordinary (multinomial) bootstrap, float32.

    With ``groups`` [n] (e.g. the prompt of each token row) whole groups are
    resampled, so rows that share a prompt are never treated as independent.
    """
    if groups is not None:
        _, inv = np.unique(groups, return_inverse=True)
        return bootstrap_weights(int(inv.max()) + 1, B, rng)[:, inv]
    W = np.empty((B, n), dtype=np.float32)
    # rows drawn in blocks (the same stream as one draw per row): one bincount per block
    step = max(1, (1 << 20) // max(n, 1))
    for a in range(0, B, step):
        m = min(step, B - a)
        idx = rng.integers(0, n, (m, n)) + (np.arange(m) * n)[:, None]
        W[a:a + m] = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n)
    return W


def bootstrap_stats(
    Xc: Compressed, cols: np.ndarray, row_idx: np.ndarray, y: np.ndarray, W: np.ndarray
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each column's statistics, [B, len(cols)] per statistic.

    ``row_idx`` [n] are the rows resampled, ``W`` [B, n] their resampling
    counts. Zeros are handled as one tie group, so the cost is
    O(B x nnz) per column instead of O(B x n). For a graded score the ranks
    are those of the full sample (a standard approximation for bootstrapping
    Spearman's rho).
    """
    n = len(row_idx)
    yv = y[row_idx].astype(np.float64)
    binary = is_binary(yv)
    pos_of = np.full(Xc.shape[0], -1, dtype=np.int64)
    pos_of[row_idx] = np.arange(n)
    B = W.shape[0]
    W = W.astype(np.float64)  # callers pass chunks of resamples (bootstrap_in_chunks), so this stays small
    Wtot = W.sum(1)
    Wy = W @ yv
    Wyy = W @ (yv * yv)
    keys = ("auroc", "smd", "r", "effect") if binary else ("spearman", "r", "effect")
    out = {k: np.zeros((B, len(cols))) for k in keys}
    if not binary:
        ry = rankdata(yv)
        Wry, Wry2 = W @ ry, W @ (ry * ry)
    for j, c in enumerate(cols):
        lo, hi = Xc.indptr[c], Xc.indptr[c + 1]
        p = pos_of[Xc.indices[lo:hi]]
        keep = p >= 0
        p, v = p[keep], Xc.data[lo:hi][keep].astype(np.float64)
        order = np.argsort(v, kind="stable")
        p, v = p[order], v[order]
        Wk = W[:, p]  # [B, k]
        yk = yv[p]
        # Pearson r of x with y under the weights (zeros add nothing to the sums)
        Sx, Sxx, Sxy = Wk @ v, Wk @ (v * v), Wk @ (v * yk)
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = Sxy / Wtot - (Sx / Wtot) * (Wy / Wtot)
            vx = Sxx / Wtot - (Sx / Wtot) ** 2
            vy = Wyy / Wtot - (Wy / Wtot) ** 2
            out["r"][:, j] = np.where((vx > 0) & (vy > 0), cov / np.sqrt(vx * vy), 0.0)
            if binary:
                W1, W0 = Wy, Wtot - Wy
                S1 = Wk @ (v * yk)
                Q1 = Wk @ (v * v * yk)
                m1, m0 = S1 / W1, (Sx - S1) / W0
                v1 = Q1 / W1 - m1 * m1
                v0 = (Sxx - Q1) / W0 - m0 * m0
                pooled = np.sqrt((W1 * v1 + W0 * v0) / np.maximum(Wtot - 2, 1))
                out["smd"][:, j] = np.where(pooled > 0, (m1 - m0) / pooled, 0.0)
                # AUROC over tie groups; the zeros are one group between negatives and positives
                if len(v):
                    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
                    P = np.add.reduceat(Wk * yk, starts, axis=1)
                    N = np.add.reduceat(Wk * (1 - yk), starts, axis=1)
                    gv = v[starts]
                else:
                    P = N = np.zeros((B, 0))
                    gv = np.zeros(0)
                at = int(np.searchsorted(gv, 0.0))
                P = np.concatenate([P[:, :at], (W1 - P.sum(1))[:, None], P[:, at:]], axis=1)
                N = np.concatenate([N[:, :at], (W0 - N.sum(1))[:, None], N[:, at:]], axis=1)
                below = np.cumsum(N, axis=1) - N
                auc = (P * (below + 0.5 * N)).sum(1) / (W1 * W0)
                out["auroc"][:, j] = auc
                out["effect"][:, j] = 2 * auc - 1
            else:
                # fixed full-sample ranks of x within the resampled rows
                k = len(v)
                zeros = n - k
                neg = int((v < 0).sum())
                starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]]) if k else np.zeros(0, dtype=np.int64)
                sizes = np.diff(np.r_[starts, k])
                mid = np.repeat(starts + (sizes + 1) / 2.0, sizes)
                rx = mid + np.where(v > 0, zeros, 0)
                zmid = neg + (zeros + 1) / 2.0
                ryk = ry[p]
                Wrx = Wk @ rx + zmid * (Wtot - Wk.sum(1))
                Wrx2 = Wk @ (rx * rx) + zmid**2 * (Wtot - Wk.sum(1))
                Wrxy = Wk @ (rx * ryk) + zmid * (Wry - Wk @ ryk)
                cov = Wrxy / Wtot - (Wrx / Wtot) * (Wry / Wtot)
                vx = Wrx2 / Wtot - (Wrx / Wtot) ** 2
                vy = Wry2 / Wtot - (Wry / Wtot) ** 2
                rho = np.where((vx > 0) & (vy > 0), cov / np.sqrt(vx * vy), 0.0)
                out["spearman"][:, j] = rho
                out["effect"][:, j] = rho
    return out


def bootstrap_in_chunks(Xc: Compressed, cols: np.ndarray, row_idx: np.ndarray, y: np.ndarray, B: int,
                        rng: np.random.Generator, groups: np.ndarray | None = None,
                        max_cells: int = 1 << 20) -> dict[str, np.ndarray]:
    """``bootstrap_stats`` over ``B`` resamples, generated in chunks so the weights stay small."""
    n = len(row_idx)
    step = max(1, min(B, max_cells // max(n, 1)))
    # weights are drawn in order from one generator (deterministic) and scored in threads,
    # with at most one chunk per worker in flight so memory stays at a few chunks
    workers = min(4, os.cpu_count() or 1)
    parts: list[dict[str, np.ndarray]] = []
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, B, step):
            W = bootstrap_weights(n, min(step, B - start), rng, groups)
            pending.append(pool.submit(bootstrap_stats, Xc, cols, row_idx, y, W))
            del W
            if len(pending) >= workers:
                parts.append(pending.popleft().result())
        parts.extend(f.result() for f in pending)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def percentile_ci(reps: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval per column of ``reps`` [B, k]."""
    a = (1 - level) / 2
    lo, hi = np.nanquantile(reps, [a, 1 - a], axis=0)
    return lo, hi
