"""Matching features across two sets (two models, two SAEs, two reports) by their fingerprints.

Each fingerprint part is optional and is compared only with its own kind (formats.md):

* ``activation``: values on probe prompts, keyed by prompt_id; compared over the keys both sides
  have (a key missing from a feature counts as 0, as absent activations do everywhere else), as the
  Pearson correlation of the two signatures;
* ``text``: embeddings of labels and top examples (one embedding model on both sides), cosine;
* ``vocab``: the token strings a feature's direction promotes and suppresses, a signed incidence
  vector over the union of both sides' strings, cosine;
* ``causal``: signed effects on criteria, over the criteria both sides were tested on, cosine;
* ``decoder``: decoder-space vectors, only when both sides share a basis (same model and hook).

The combined score is the weighted mean of the parts both sides have (weights renormalised over
them, recorded in ``method``), and for each pair over the parts both of its features have (a
feature without, say, causal evidence is neither like nor unlike one with it). Its null model is a permutation one: random (left, right) pairs,
with the activation part computed after permuting the right side's probe keys (so that the
prompts no longer correspond), every other part on the same random pairs; a pair's p-value is the
share of null scores at least as high, (1 + count) / (1 + n_null).

Everything is block matrix products and ``argpartition``: no Python loop over pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from interp_lab.errors import UsageError
from interp_lab.evidence.causal import normalize_criterion
from interp_lab.evidence.stats import significant
from interp_lab.schemas.records import MATCHES

COMPONENTS = ("activation", "text", "vocab", "causal", "decoder")
WEIGHTS = {"activation": 0.4, "text": 0.15, "vocab": 0.15, "causal": 0.15, "decoder": 0.15}


@dataclass
class FeatureSet:
    """The fingerprints of n features; each part None when the set does not have it."""

    ids: list[str]
    activation: Mapping[str, np.ndarray] | None = None
    """{probe key: [n] values}; NaN or a missing key: not recorded (counted as 0)."""
    text: np.ndarray | None = None
    """[n, d] embeddings (rows of zeros: none for that feature)."""
    text_model: str | None = None
    vocab: Sequence[tuple[Sequence[str], Sequence[str]]] | None = None
    """Per feature, (promoted, suppressed) token strings."""
    causal: Mapping[str, np.ndarray] | None = None
    """{criterion: [n] signed effects}; NaN: not tested."""
    decoder: np.ndarray | None = None
    """[n, d] decoder-space vectors."""
    basis: dict[str, Any] | None = None
    """Where the decoder vectors live: {"model": ..., "hook": ...}."""
    labels: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(set(self.ids)) != n:
            raise UsageError("feature ids repeat within one side")
        for name, arr in (("text", self.text), ("decoder", self.decoder)):
            if arr is not None and len(arr) != n:
                raise UsageError(f"{name}: {len(arr)} rows for {n} features")
        if self.vocab is not None and len(self.vocab) != n:
            raise UsageError(f"vocab: {len(self.vocab)} rows for {n} features")

    def __len__(self) -> int:
        return len(self.ids)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _keyed(parts: Mapping[str, np.ndarray], keys: list[str], n: int) -> np.ndarray:
    out = np.zeros((n, len(keys)), dtype=np.float32)
    for j, k in enumerate(keys):
        v = np.asarray(parts[k], dtype=np.float32)
        out[:, j] = np.where(np.isfinite(v), v, 0.0)
    return out


@dataclass
class Prepared:
    """Both sides' parts as unit rows, so that a part's similarity is one matrix product; which features
    have each part (a row of zeros has none)."""

    left: dict[str, Any]
    right: dict[str, Any]
    weights: dict[str, float]
    info: dict[str, Any]
    has_left: dict[str, np.ndarray] = field(default_factory=dict)
    has_right: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for side, has in ((self.left, self.has_left), (self.right, self.has_right)):
            for c, x in side.items():
                norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel()) if sp.issparse(x) else np.linalg.norm(x, axis=1)
                has[c] = norms > 0

    def weight_of_pairs(self, li: np.ndarray, ri: np.ndarray) -> np.ndarray:
        """Per pair, the summed weight of the parts both features have."""
        return sum(np.float32(w) * (self.has_left[c][li] & self.has_right[c][ri]) for c, w in self.weights.items())


def prepare(left: FeatureSet, right: FeatureSet, weights: Mapping[str, float] | None = None) -> Prepared:
    """The parts both sides have, aligned (shared probe keys, criteria, token strings) and normalised."""
    w = dict(WEIGHTS if weights is None else weights)
    unknown = set(w) - set(COMPONENTS)
    if unknown:
        raise UsageError(f"unknown match components {sorted(unknown)} ({', '.join(COMPONENTS)})")
    L: dict[str, Any] = {}
    R: dict[str, Any] = {}
    info: dict[str, Any] = {}
    if left.activation is not None and right.activation is not None:
        keys = sorted(set(left.activation) & set(right.activation))
        if len(keys) >= 3:
            a, b = _keyed(left.activation, keys, len(left)), _keyed(right.activation, keys, len(right))
            L["activation"] = _unit_rows(a - a.mean(1, keepdims=True))
            R["activation"] = _unit_rows(b - b.mean(1, keepdims=True))
            info["activation"] = {"shared_keys": len(keys), "measure": "Pearson correlation over the shared "
                                                                       "probe keys (a missing key counts as 0)"}
        else:
            info["activation"] = {"shared_keys": len(keys), "skipped": "fewer than 3 shared probe keys"}
    if left.text is not None and right.text is not None:
        if left.text_model != right.text_model or left.text.shape[1] != right.text.shape[1]:
            info["text"] = {"skipped": f"embedding models differ ({left.text_model} / {right.text_model})"}
        else:
            L["text"], R["text"] = _unit_rows(left.text), _unit_rows(right.text)
            info["text"] = {"model": left.text_model, "measure": "cosine"}
    if left.vocab is not None and right.vocab is not None:
        index: dict[str, int] = {}
        mats = []
        for side in (left.vocab, right.vocab):
            rows, cols, vals = [], [], []
            for i, (up, down) in enumerate(side):
                for toks, sign in ((up, 1.0), (down, -1.0)):
                    for t in toks:
                        rows.append(i)
                        cols.append(index.setdefault(t, len(index)))
                        vals.append(sign)
            mats.append((rows, cols, vals))
        V = max(len(index), 1)
        out = []
        for (rows, cols, vals), n in zip(mats, (len(left), len(right))):
            m = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n, V))
            m.sum_duplicates()
            m.data = np.sign(m.data)  # a string listed twice counts once
            norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
            out.append(sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ m)
        L["vocab"], R["vocab"] = out[0].tocsr(), out[1].tocsr()
        info["vocab"] = {"token_strings": len(index), "measure": "cosine of signed (promoted +1, suppressed -1) "
                                                                 "incidence over token strings"}
    if left.causal is not None and right.causal is not None:
        crit = sorted(set(left.causal) & set(right.causal))
        if crit:
            L["causal"] = _unit_rows(_keyed(left.causal, crit, len(left)))
            R["causal"] = _unit_rows(_keyed(right.causal, crit, len(right)))
            info["causal"] = {"shared_criteria": len(crit), "measure": "cosine of signed effects"}
    if left.decoder is not None and right.decoder is not None:
        if left.basis is None or _basis_key(left.basis) != _basis_key(right.basis) \
                or left.decoder.shape[1] != right.decoder.shape[1]:
            info["decoder"] = {"skipped": "the two sides do not share a decoder basis"}
        else:
            L["decoder"], R["decoder"] = _unit_rows(left.decoder), _unit_rows(right.decoder)
            info["decoder"] = {"basis": left.basis, "measure": "cosine"}
    used = {k: float(w.get(k, 0.0)) for k in L if w.get(k, 0.0) > 0}
    if not used:
        why = "; ".join(f"{k}: {v['skipped']}" for k, v in info.items() if "skipped" in v)
        raise UsageError("the two sides share no fingerprint part to compare" + (f" ({why})" if why else ""))
    total = sum(used.values())
    return Prepared({k: L[k] for k in used}, {k: R[k] for k in used}, {k: v / total for k, v in used.items()}, info)


def _block(a: Any, b: Any) -> np.ndarray:
    """Similarities of every row of ``a`` with every row of ``b`` (unit rows): [len(a), len(b)]."""
    if sp.issparse(a):
        return np.asarray((a @ b.T).todense(), dtype=np.float32)
    return a @ b.T


def pair_components(p: Prepared, li: np.ndarray, ri: np.ndarray, right: dict[str, Any] | None = None
                    ) -> dict[str, np.ndarray]:
    """Each part's similarity for the pairs (li[k], ri[k])."""
    right = p.right if right is None else right
    out = {}
    for k in p.weights:
        a, b = p.left[k][li], right[k][ri]
        if sp.issparse(a):
            out[k] = np.asarray(a.multiply(b).sum(1), dtype=np.float32).ravel()
        else:
            out[k] = np.einsum("ij,ij->i", a, b)
    return out


def combine(p: Prepared, parts: Mapping[str, np.ndarray], li: np.ndarray, ri: np.ndarray) -> np.ndarray:
    """Combined scores of the pairs (li[k], ri[k]): the weighted mean over the parts both features have
    (a part one of them lacks is no evidence either way); 0 when they share none."""
    num = sum(np.float32(p.weights[c]) * parts[c] for c in p.weights)
    den = p.weight_of_pairs(li, ri)
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float32), where=den > 0).astype(np.float32)


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


def feature_set(entries: Sequence[Mapping[str, Any]], where: str = "features") -> tuple[FeatureSet, list[str]]:
    """A ``FeatureSet`` from cards or feature-dump rows as dicts (``feature_id``, ``label``, ``fingerprint``
    as formats.md describes it), and notes on what could not be used. ``where`` names the source in
    errors."""
    from interp_lab.errors import InputError

    notes: list[str] = []
    n = len(entries)
    ids = [str(e["feature_id"]) for e in entries]
    fps = [e.get("fingerprint") or {} for e in entries]

    def bad(i: int, fld: str, msg: str) -> InputError:
        return InputError(where, f"feature {ids[i]!r}: {msg}", field=f"fingerprint.{fld}")

    # activation: keyed signatures; positional lists become keys "#0", "#1", ... and say so
    act: dict[str, np.ndarray] = {}
    positional = 0
    for i, fp in enumerate(fps):
        sig = fp.get("activation")
        if sig is None:
            continue
        if isinstance(sig, list):
            positional += 1
            sig = {f"#{j}": v for j, v in enumerate(sig)}
        if not isinstance(sig, Mapping):
            raise bad(i, "activation", "expected {probe key: value} or a list")
        for key, v in sig.items():
            col = act.get(key)
            if col is None:
                col = act[key] = np.full(n, np.nan, dtype=np.float32)
            col[i] = float(v)
    if positional:
        notes.append(f"{where}: {positional} activation signatures are positional lists (no probe ids); they are "
                     "compared position by position, which is right only if both sides used the same probes in "
                     "the same order")
    text, text_model = None, None
    if any(fp.get("text_embedding") for fp in fps):
        models = {(fp.get("text_embedding") or {}).get("model") for fp in fps if fp.get("text_embedding")}
        if len(models) > 1:
            raise InputError(where, f"text embeddings from several models ({', '.join(map(str, models))})",
                             field="fingerprint.text_embedding.model")
        text_model = models.pop()
        dims = {len(fp["text_embedding"]["vector"]) for fp in fps if fp.get("text_embedding")}
        if len(dims) > 1:
            raise InputError(where, f"text embeddings of several sizes {sorted(dims)}",
                             field="fingerprint.text_embedding.vector")
        text = np.zeros((n, dims.pop()), dtype=np.float32)
        for i, fp in enumerate(fps):
            if fp.get("text_embedding"):
                text[i] = fp["text_embedding"]["vector"]
    vocab = None
    if any(fp.get("vocab") for fp in fps):
        vocab = [((fp.get("vocab") or {}).get("promoted") or [], (fp.get("vocab") or {}).get("suppressed") or [])
                 for fp in fps]
    causal: dict[str, np.ndarray] | None = None
    if any(fp.get("causal") for fp in fps):
        causal = {}
        for i, fp in enumerate(fps):
            for crit, v in (fp.get("causal") or {}).items():
                key = normalize_criterion(str(crit))
                col = causal.get(key)
                if col is None:
                    col = causal[key] = np.full(n, np.nan, dtype=np.float32)
                col[i] = float(v)
    decoder, basis = None, None
    with_dec = [i for i, fp in enumerate(fps) if (fp.get("decoder") or {}).get("vector") is not None]
    if with_dec:
        bases = {_basis_key(fps[i]["decoder"].get("basis")) for i in with_dec}
        dims = {len(fps[i]["decoder"]["vector"]) for i in with_dec}
        if len(bases) > 1 or len(dims) > 1:
            notes.append(f"{where}: decoder vectors in {len(bases)} bases / {len(dims)} sizes; decoder part not used")
        else:
            basis = fps[with_dec[0]]["decoder"].get("basis")
            decoder = np.zeros((n, dims.pop()), dtype=np.float32)
            for i in with_dec:
                decoder[i] = fps[i]["decoder"]["vector"]
    labels = [e.get("label") for e in entries]
    return FeatureSet(ids, act or None, text, text_model, vocab, causal, decoder, basis, labels), notes


def _basis_key(basis: Any) -> str:
    """Two decoder bases are one when every field (model, layer, hook or hooks) is equal."""
    import json

    return json.dumps(basis, sort_keys=True, default=str)


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
