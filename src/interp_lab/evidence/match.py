"""Matching features across two sets (two models, two SAEs, two reports) by their fingerprints.

The fingerprints, their parts and the combined score of a pair are in ``evidence.fingerprint``.
Here is the search and its statistics: every left feature's top-k right candidates by combined
score, the null model and the one-to-one assignment, written as the ``method`` and ``matches`` of
matches.json.

The null model is a permutation one: random (left, right) pairs, with the activation part computed
after permuting the right side's probe keys (so that the prompts no longer correspond), every other
part on the same random pairs; a pair's p-value is the share of null scores at least as high,
(1 + count) / (1 + n_null).

Everything is block matrix products and ``argpartition``: no Python loop over pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from interp_lab.evidence.fingerprint import WEIGHTS, FeatureSet, Prepared, combine, pair_components, prepare
from interp_lab.evidence.stats import significant
from interp_lab.schemas.records import MATCHES


def _block(a: Any, b: Any) -> np.ndarray:
    """Similarities of every row of ``a`` with every row of ``b`` (unit rows): [len(a), len(b)]."""
    if sp.issparse(a):
        return np.asarray((a @ b.T).todense(), dtype=np.float32)
    return a @ b.T


@dataclass
class Null:
    """Combined scores of random pairs under the permutation null, sorted."""

    scores: np.ndarray
    components: dict[str, np.ndarray]
    method: str

    def p_values(self, s: np.ndarray) -> np.ndarray:
        return _p_of(self.scores, np.asarray(s))


def permutation_null(p: Prepared, n_pairs: int = 20_000, seed: int = 0) -> Null:
    """``n_pairs`` random (left, right) pairs, the right side's probe keys permuted for the activation part."""
    rng = np.random.default_rng(seed)
    nl, nr = p.left[next(iter(p.weights))].shape[0], p.right[next(iter(p.weights))].shape[0]
    li, ri = rng.integers(0, nl, n_pairs), rng.integers(0, nr, n_pairs)
    right = dict(p.right)
    if "activation" in right:
        right["activation"] = right["activation"][:, rng.permutation(right["activation"].shape[1])]
    parts = pair_components(p, li, ri, right)
    return Null(np.sort(combine(p, parts, li, ri)), parts,
                f"{n_pairs:,} random pairs; activation signatures compared after a random permutation of the "
                "right side's probe keys; p = (1 + null scores >= score) / (1 + null pairs)")


@dataclass
class TopK:
    """For each left feature its k best right candidates, best first."""

    index: np.ndarray  # [nl, k] right indices
    score: np.ndarray  # [nl, k] combined scores
    components: dict[str, np.ndarray]  # part -> [nl, k]


def top_k(p: Prepared, k: int = 10, block_rows: int = 1024) -> TopK:
    """The k right features with the highest combined score for every left one, in blocks of left rows."""
    nl, nr = p.left[next(iter(p.weights))].shape[0], p.right[next(iter(p.weights))].shape[0]
    k = min(k, nr)
    index = np.empty((nl, k), dtype=np.int64)
    score = np.empty((nl, k), dtype=np.float32)
    comps = {c: np.empty((nl, k), dtype=np.float32) for c in p.weights}
    for lo in range(0, nl, block_rows):
        hi = min(nl, lo + block_rows)
        parts = {c: _block(p.left[c][lo:hi], p.right[c]) for c in p.weights}
        s = np.zeros((hi - lo, nr), dtype=np.float32)
        den = np.zeros((hi - lo, nr), dtype=np.float32)
        for c, w in p.weights.items():
            s += parts[c] * np.float32(w)
            hl, hr = p.has_left[c][lo:hi], p.has_right[c]
            if hl.all() and hr.all():
                den += np.float32(w)
            else:
                den += np.float32(w) * np.outer(hl, hr)
        np.divide(s, den, out=s, where=den > 0)
        s[den == 0] = 0.0
        top = _top_columns(s, k)
        ts = np.take_along_axis(s, top, 1)
        index[lo:hi], score[lo:hi] = top, ts
        for c in p.weights:
            comps[c][lo:hi] = np.take_along_axis(parts[c], top, 1)
    return TopK(index, score, comps)


CHUNK = 64


def _top_columns(s: np.ndarray, k: int) -> np.ndarray:
    """[rows, k] the columns of each row's k largest values, best first (ties by column). The k-th largest
    of the rows' chunk maxima (chunks of 64 columns) bounds each row's k-th largest value from below,
    so only the entries above it are sorted: a pass of comparisons instead of a partition of every row."""
    rows, n = s.shape
    chunks = n // CHUNK
    if chunks < 4 * k:
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return top
    head = s[:, : chunks * CHUNK].reshape(rows, chunks, CHUNK).max(2)
    bound = np.partition(head, chunks - k, axis=1)[:, chunks - k]
    r, c = np.nonzero(s >= bound[:, None])
    v = s[r, c]
    order = np.lexsort((c, -v, r))
    r, c = r[order], c[order]
    start = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=rows), out=start[1:])
    keep = (np.arange(len(r)) - start[r]) < k
    return c[keep].reshape(rows, k)


def one_to_one(t: TopK, n_right: int, floor: float) -> np.ndarray:
    """[nl] the right index assigned to each left feature (-1: none), maximising the summed combined
    score over the top-k candidate graph, each right feature used at most once and no pair below
    ``floor`` (a pair the null explains is worth less than leaving both unmatched)."""
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    nl, k = t.index.shape
    keep = t.score > floor
    rows = np.repeat(np.arange(nl), k)[keep.ravel()]
    cols = t.index.ravel()[keep.ravel()]
    top = float(t.score.max()) if t.score.size else 0.0
    # costs are positive (an absent entry is no edge): top + 1 - score, and leaving a left feature
    # unmatched (its own dummy column) costs as much as a pair scoring ``floor``
    cost = (top + 1.0 - t.score.ravel()[keep.ravel()]).astype(np.float64)
    dummy = np.full(nl, top + 1.0 - floor, dtype=np.float64)
    g = sp.csr_matrix((np.concatenate([cost, dummy]),
                       (np.concatenate([rows, np.arange(nl)]), np.concatenate([cols, n_right + np.arange(nl)]))),
                      shape=(nl, n_right + nl))
    r, c = min_weight_full_bipartite_matching(g)
    out = np.full(nl, -1, dtype=np.int64)
    real = c < n_right
    out[r[real]] = c[real]
    return out


@dataclass(frozen=True)
class MatchSettings:
    k: int = 10
    """Candidates kept for every left feature (many-to-many)."""
    null_pairs: int = 20_000
    alpha: float = 0.05
    """One-to-one pairs must score above the null's 1 - alpha quantile."""
    seed: int = 0
    weights: tuple[tuple[str, float], ...] = tuple(WEIGHTS.items())

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "null_pairs": self.null_pairs, "alpha": self.alpha, "seed": self.seed,
                "weights": dict(self.weights)}


def match(left: FeatureSet, right: FeatureSet, settings: MatchSettings = MatchSettings()) -> dict[str, Any]:
    """``method`` and ``matches`` of matches.json: every left feature's top-k right candidates with their
    combined score, each part's similarity and p-value, the combined p-value under the permutation null,
    its rank among the left feature's candidates and among the right feature's, and whether the one-to-one
    assignment kept it."""
    p = prepare(left, right, dict(settings.weights))
    t = top_k(p, settings.k)
    null = permutation_null(p, settings.null_pairs, settings.seed)
    floor = float(np.quantile(null.scores, 1.0 - settings.alpha))
    assign = one_to_one(t, len(right), floor)
    nl, k = t.index.shape
    li = np.repeat(np.arange(nl), k)
    ri, score = t.index.ravel(), t.score.ravel()
    pv = null.p_values(score)
    # the chance that the best of the right side's n random candidates scores this high (Sidak)
    best_of = -np.expm1(len(right) * np.log1p(-np.minimum(pv, 1.0 - 1e-12)))
    part_p = {c: _p_of(np.sort(null.components[c]), t.components[c].ravel()) for c in p.weights}
    rank_left = np.tile(np.arange(1, k + 1), nl)
    order = np.lexsort((li, -score, ri))  # by right feature, best first
    rank_right = np.empty(len(order), dtype=np.int64)
    rs = ri[order]
    start = np.flatnonzero(np.r_[True, rs[1:] != rs[:-1]])
    rank_right[order] = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)])) + 1
    kept = assign[li] == ri
    matches = []
    for e in range(len(li)):
        i, j = int(li[e]), int(ri[e])
        matches.append({
            "left_feature": left.ids[i], "right_feature": right.ids[j], "score": significant(score[e]),
            "components": {c: significant(t.components[c].ravel()[e]) for c in p.weights},
            "component_p_values": {c: significant(part_p[c][e], 4) for c in p.weights},
            "p_value": significant(pv[e], 4), "p_value_best_of": significant(best_of[e], 4),
            "rank_left": int(rank_left[e]), "rank_right": int(rank_right[e]),
            "one_to_one": bool(kept[e]),
            "left_label": left.labels[i] if left.labels else None,
            "right_label": right.labels[j] if right.labels else None,
        })
    method = {
        "components": p.info, "weights": p.weights,
        "combined": "weighted mean of the parts both sides have (weights renormalised over them), for each pair "
                    "over the parts both of its features have",
        "null_model": null.method, "p_floor": significant(1.0 / (1 + len(null.scores)), 4),
        "p_value_best_of": "1 - (1 - p)^n_right: the chance that the best of the right side's candidates "
                           "scores this high under the null (p_value is for one given pair)",
        "one_to_one": f"maximum total score over the top-{k} candidate graph (scipy LAPJVsp), each feature "
                      f"used at most once, no pair at or below the null's {1 - settings.alpha:.0%} quantile "
                      f"({significant(floor, 4)})",
        "many_to_many": f"the {k} right features with the highest combined score for every left feature",
        "settings": settings.as_dict(),
    }
    summary = {"left_features": nl, "right_features": len(right), "pairs": len(matches),
               "one_to_one_pairs": int((assign >= 0).sum()),
               "pairs_p_below_alpha": int((pv < settings.alpha).sum()),
               "one_to_one_above": _share_above(t, kept.reshape(nl, k), nl)}
    return {"schema_version": MATCHES, "method": method, "summary": summary, "matches": matches}


THRESHOLDS = (0.5, 0.7, 0.9)


def _share_above(t: Any, kept: np.ndarray, n_left: int) -> dict[str, dict[str, float]]:
    """Per part (and the combined score): the share of left features whose one-to-one pair scores above
    each threshold (a left feature without a pair counts as below), e.g. decoder cosine > 0.7 between
    two SAEs' latents."""
    parts = {"score": t.score, **t.components}
    out = {}
    for c, v in parts.items():
        got = np.where(kept, v, -np.inf).max(axis=1) if len(v) else np.zeros(0)
        out[c] = {f"{x:g}": significant(float((got > x).sum()) / max(n_left, 1), 4) for x in THRESHOLDS}
    return out


def _p_of(null_sorted: np.ndarray, s: np.ndarray) -> np.ndarray:
    n = len(null_sorted)
    return (1.0 + n - np.searchsorted(null_sorted, s.astype(np.float32), side="left")) / (1.0 + n)
