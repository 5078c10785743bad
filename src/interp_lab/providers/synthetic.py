"""Synthetic evidence with planted ground truth (tests and demos only; never a silent default).

Planted roles (evidence.md): a dense promoter, a sparse selective promoter,
a suppressor, a loud decoy (large activations everywhere, no association)
and a confounded decoy (tracks a covariate that itself correlates with the
criterion), hidden among noise features at random ids. Every row carries
``metadata.source = "synthetic"``; every output built from it says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from interp_lab.io.records import RecordMatrix
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.feature_id import format_id, sort_key

ROLES = ("dense_promoter", "sparse_promoter", "suppressor", "loud_decoy", "confounded_decoy")
COVARIATE = "token_count"


@dataclass(frozen=True)
class SyntheticSpec:
    n_prompts: int = 5000
    n_features: int = 2000  # including the planted ones
    seed: int = 0
    covariate: bool = True  # give the confounder as metadata.covariates.token_count
    graded: bool = False  # graded scores in [0, 1] instead of 0/1 labels
    interventions: bool = True  # also generate intervention records with controls
    intervention_prompts: int = 300
    controls: int = 24
    model: str = "synthetic/planted"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SyntheticEvidence:
    records: RecordMatrix
    planted: dict[str, str]  # feature_id -> role
    interventions: list[dict[str, Any]] = field(default_factory=list)
    spec: SyntheticSpec = field(default_factory=SyntheticSpec)


def generate(spec: SyntheticSpec = SyntheticSpec()) -> SyntheticEvidence:
    """Planted-truth activation records (and intervention records with controls)."""
    rng = np.random.default_rng(spec.seed)
    n, F = spec.n_prompts, spec.n_features
    latent = rng.normal(size=n)
    if spec.graded:
        score = 1.0 / (1.0 + np.exp(-1.5 * latent))
        y = score
    else:
        y = (latent > 0).astype(np.float64)
        score = y
    ys = 2 * y - 1  # in [-1, 1]
    cov = rng.normal(size=n) + 1.0 * ys  # correlates with the criterion
    token_count = np.round(60 + 15 * cov)
    ids = rng.choice(np.arange(4 * F), size=F, replace=False)
    planted_cols = {role: i for i, role in enumerate(ROLES)}
    cols: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    def add(j: int, mask: np.ndarray, v: np.ndarray) -> None:
        r = np.flatnonzero(mask)
        rows.append(r)
        cols.append(np.full(len(r), j, dtype=np.int32))
        vals.append(v[r])

    everywhere = np.ones(n, dtype=bool)
    p_pos = y if spec.graded else y
    add(planted_cols["dense_promoter"], everywhere, rng.normal(size=n) + 0.6 * ys)
    fire = rng.random(n) < (0.01 + 0.24 * p_pos)
    add(planted_cols["sparse_promoter"], fire, 1.0 + rng.exponential(size=n))
    fire = rng.random(n) < (0.35 - 0.30 * p_pos)
    add(planted_cols["suppressor"], fire, 0.5 + rng.exponential(size=n))
    add(planted_cols["loud_decoy"], everywhere, 40.0 + 10.0 * rng.normal(size=n))
    add(planted_cols["confounded_decoy"], everywhere, (cov - cov.mean()) / cov.std() + 0.3 * rng.normal(size=n))
    k = len(ROLES)
    rates = np.exp(rng.uniform(np.log(0.002), np.log(0.3), size=F - k))
    dense = rng.random(F - k) < 0.1
    scales = np.exp(rng.normal(size=F - k))
    for j in range(F - k):
        if dense[j]:
            add(k + j, everywhere, scales[j] * rng.normal(size=n))
        else:
            add(k + j, rng.random(n) < rates[j], scales[j] * rng.exponential(size=n))
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    v = np.concatenate(vals).astype(np.float32)
    names = [format_id(int(i) // 1024, "F", int(i)) for i in ids]
    order = sorted(range(F), key=lambda i: sort_key(names[i]))
    rank = np.empty(F, dtype=np.int32)
    rank[order] = np.arange(F, dtype=np.int32)
    X = Compressed.from_coo(r, rank[c], v, (n, F))
    X.eliminate_zeros()
    feature_ids = np.array([names[i] for i in order], dtype=object)
    planted = {names[planted_cols[role]]: role for role in ROLES}
    prompt_ids = np.array([f"syn-{i}" for i in range(n)], dtype=object)
    texts = [
        f"synthetic prompt {i} ({'scored ' + format(s, '.2f') if spec.graded else ('positive' if s else 'negative')})"
        for i, s in enumerate(score)
    ]
    m = RecordMatrix(
        path="synthetic",
        X=X,
        feature_ids=feature_ids,
        prompt_ids=prompt_ids,
        token_index=np.full(n, -1, dtype=np.int64),
        scores=score.astype(np.float64),
        splits=np.full(n, -1, dtype=np.int8),
        texts=pa.chunked_array([pa.array(texts, pa.string())]),
        tokens=None,
        covariates={COVARIATE: token_count} if spec.covariate else {},
        models=[spec.model],
        sources=["synthetic"],
        hooks=[],
        feature_labels={fid: f"planted {role.replace('_', ' ')}" for fid, role in planted.items()},
        reader="synthetic",
    )
    ev = SyntheticEvidence(records=m, planted=planted, spec=spec)
    if spec.interventions:
        ev.interventions = _interventions(spec, rng, planted, feature_ids, prompt_ids[: spec.intervention_prompts], y)
    return ev


def _interventions(spec: SyntheticSpec, rng: np.random.Generator, planted: dict[str, str],
                   feature_ids: np.ndarray, prompts: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """Ablations of the planted features plus random-feature controls and a placebo, per prompt."""
    true_effect = {"dense_promoter": 0.12, "sparse_promoter": 0.08, "suppressor": -0.07,
                   "loud_decoy": 0.0, "confounded_decoy": 0.0}
    noise = 0.05
    base = np.clip(0.3 + 0.4 * y[: len(prompts)] + rng.normal(0, 0.05, len(prompts)), 0, 1)
    rows = []

    def emit(fid: str, effect: float, control: str | None, control_for: str | None) -> None:
        drop = effect + rng.normal(0, noise, len(prompts))
        for pid, b, d in zip(prompts.tolist(), base.tolist(), drop.tolist()):
            meta: dict[str, Any] = {"source": "synthetic", "score_kind": "probability"}
            if control:
                meta["control_type"] = control
                meta["control_for"] = control_for
            rows.append({
                "schema_version": "interp-lab.intervention_record.v1", "model": spec.model,
                "feature_id": fid, "intervention": "ablate", "strength": 0.0,
                "criterion": None, "prompt_id": pid,
                "baseline_score": round(b, 6), "intervention_score": round(b - d, 6),
                "side_effect_score": round(abs(rng.normal(0, 0.01)), 6), "metadata": meta,
            })

    for fid, role in sorted(planted.items()):
        emit(fid, true_effect[role], None, None)
    others = [f for f in feature_ids.tolist() if f not in planted]
    for fid in rng.choice(others, size=spec.controls, replace=False).tolist():
        emit(fid, 0.0, "random_feature", "*")
    emit("placebo", 0.0, "placebo", "*")
    return rows
