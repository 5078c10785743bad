"""Contrast directions: what separates positive from negative prompts at each layer.

Per layer, from ``hook_resid_post`` at the last token of discovery prompts:
``L{i}:D0``, the difference of class means, and ``L{i}:D1``, the weight
vector of an L2-regularized logistic probe (fitted on activations centred
and scaled by one global standard deviation, so the weight is a direction in
the model's own basis). The best layer is chosen by the projection's AUROC
on calibration prompts; held-out AUROC is reported, never used to choose.
Directions are saved as safetensors (``directions.safetensors``: one unit
vector per feature id, the hook of each in the metadata) and exported as
feature-dump rows (``D`` features with their vectors).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import InputError, UsageError
from interp_lab.evidence.stats import auroc, class_cut
from interp_lab.schemas.feature_id import format_id

METHODS = {"mean_difference": 0, "logistic_probe": 1}


def mean_difference(x: np.ndarray, positive: np.ndarray) -> np.ndarray:
    return x[positive].mean(0) - x[~positive].mean(0)


def logistic_probe(x: np.ndarray, positive: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """Weights of an L2-regularized logistic regression (L-BFGS), in the units of ``x``."""
    from scipy.optimize import minimize

    mu, sd = x.mean(0), float(x.std()) or 1.0
    z = (x - mu) / sd
    y = positive.astype(np.float64)

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = wb[:-1], wb[-1]
        m = z @ w + b
        p = 1.0 / (1.0 + np.exp(-m))
        ll = np.logaddexp(0.0, m) - y * m
        g = p - y
        return (float(ll.mean() + l2 * w @ w),
                np.r_[z.T @ g / len(y) + 2 * l2 * w, g.mean()])

    res = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:-1]


def fit_method(method: str, x: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """The (unnormalized) direction of ``method`` fitted on activations ``x`` [n, d] with classes ``positive``."""
    return mean_difference(x, positive) if method == "mean_difference" else logistic_probe(x, positive)


@dataclass
class Direction:
    feature_id: str
    layer: int
    hook: str
    method: str
    vector: np.ndarray  # unit [d]
    auroc: dict[str, float]  # per split: AUROC of the projection

    def feature_row(self, model: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A feature-dump row (formats.md) carrying the vector."""
        vec = [round(float(v), 6) for v in self.vector]
        label = {"mean_difference": "difference of class means", "logistic_probe": "logistic probe"}[self.method]
        return {"schema_version": "interp-lab.feature.v1", "feature_id": self.feature_id, "model": model,
                "layer": self.layer, "label": f"contrast direction at {self.hook} ({label}, last token)",
                "decoder_signature": vec, "source": "contrast",
                "fingerprint": {"decoder": {"vector": vec, "basis": {"model": model, "hook": self.hook}}},
                "metadata": {"method": self.method, "auroc": self.auroc, **(extra or {})}}


def fit_directions(acts: dict[int, dict[str, np.ndarray]], positive: dict[str, np.ndarray],
                   methods: Sequence[str] = tuple(METHODS)) -> list[Direction]:
    """Directions per layer from ``acts[layer][split]`` [n, d], fitted on discovery and scored on every split."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UsageError(f"unknown direction method(s) {bad} (use {', '.join(METHODS)})")
    disc = positive["discovery"]
    if disc.all() or not disc.any():
        raise UsageError("contrast directions need positive and negative discovery prompts")
    out = []
    for layer, by_split in sorted(acts.items()):
        x = by_split["discovery"]
        for method in methods:
            w = fit_method(method, x, disc)
            norm = np.linalg.norm(w)
            u = (w / norm if norm > 0 else w).astype(np.float32)
            au = {s: round(auroc(a @ u, positive[s]), 6) for s, a in by_split.items() if len(a)}
            out.append(Direction(format_id(layer, "D", METHODS[method]), layer, f"blocks.{layer}.hook_resid_post", method,
                                 u, au))
    return out


def best_direction(directions: Sequence[Direction], method: str | None = "mean_difference") -> Direction:
    """The direction with the highest calibration AUROC (ties: the earlier layer)."""
    pool = [d for d in directions if method is None or d.method == method]
    if not pool:
        raise UsageError(f"no {method} directions were fitted")
    return max(pool, key=lambda d: (d.auroc.get("calibration", d.auroc["discovery"]), -d.layer))


def directions_bytes(directions: Sequence[Direction], meta: dict[str, Any] | None = None) -> bytes:
    """``directions.safetensors``: one float32 unit vector per feature id; hooks and methods in the metadata."""
    from safetensors.numpy import save

    tensors = {d.feature_id: np.ascontiguousarray(d.vector, dtype=np.float32) for d in directions}
    info = {d.feature_id: {"hook": d.hook, "method": d.method, "auroc": d.auroc} for d in directions}
    metadata = {"schema_version": "interp-lab.directions.v1", "directions": json.dumps(info, sort_keys=True),
                **{k: str(v) for k, v in (meta or {}).items()}}
    return save(tensors, metadata=metadata)


def save_directions(directions: Sequence[Direction], path: str | os.PathLike, meta: dict[str, Any] | None = None
                    ) -> Path:
    from interp_lab.io.atomic import write_bytes_atomic

    write_bytes_atomic(path, directions_bytes(directions, meta))
    return Path(path)


def load_directions(path: str | os.PathLike) -> dict[str, tuple[str, np.ndarray]]:
    """``{feature_id: (hook, unit vector)}`` from a directions file."""
    from safetensors import safe_open

    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such directions file")
    try:
        with safe_open(str(p), "np") as fh:
            meta = fh.metadata() or {}
            info = json.loads(meta.get("directions", "{}"))
            out = {}
            for key in fh.keys():
                hook = (info.get(key) or {}).get("hook")
                if hook is None:
                    raise InputError(p, f"direction {key!r} names no hook in the metadata", field="directions")
                out[key] = (hook, fh.get_tensor(key))
            return out
    except InputError:
        raise
    except Exception as exc:  # not a safetensors file
        raise InputError(p, f"not a directions safetensors file ({exc})") from None


def split_acts(lm, rows: Sequence[dict[str, Any]], layers: Sequence[int], batch_size: int = 64
               ) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Last-token ``hook_resid_post`` per layer and split, and the positive mask per split."""
    from interp_lab.interventions.run import split_set

    hooks = [f"blocks.{i}.hook_resid_post" for i in layers]
    acts: dict[int, dict[str, np.ndarray]] = {i: {} for i in layers}
    scores = {s: np.array([r["criterion_score"] for r in rows if r["split"] == s], dtype=float)
              for s in ("discovery", "calibration", "heldout")}
    cut = class_cut(scores["discovery"])
    positive = {s: v > cut for s, v in scores.items()}
    for s in scores:
        chosen = [r for r in rows if r["split"] == s]
        if not chosen:
            continue
        got = split_set(lm, chosen, batch_size).last_token_acts(hooks)
        for i, h in zip(layers, hooks):
            acts[i][s] = got[h]
    return acts, positive
