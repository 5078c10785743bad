"""Feature fingerprints and their similarity: what ``evidence.match`` compares.

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
feature without, say, causal evidence is neither like nor unlike one with it).

Here: ``FeatureSet`` (one side's fingerprints) and ``feature_set`` (one from cards or feature-dump
rows), ``prepare`` (both sides' shared parts as unit rows) and the similarity of given pairs
(``pair_components``, ``combine``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from interp_lab.errors import UsageError
from interp_lab.evidence.causal import normalize_criterion

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
