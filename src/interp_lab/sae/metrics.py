"""Reconstruction metrics of evidence.md on held-out store rows: FVU (with and without the tokens whose
norm exceeds 10x the median), MSE, L0, dead and dense fractions, and each latent's firing frequency."""

from __future__ import annotations

import numpy as np
import torch

from interp_lab.harvest.scan import OUTLIER_NORM
from interp_lab.sae.base import SparseCoder
from interp_lab.store.reader import Store

DENSE = 0.1  # a latent non-zero on more than this fraction of tokens is dense


@torch.no_grad()
def reconstruction_metrics(sae: SparseCoder, store: Store, hook: str, rows: np.ndarray, *, hook_out: str | None = None,
                           batch_size: int = 8192, outlier_norm: float = OUTLIER_NORM,
                           frequencies: bool = False) -> dict:
    """Metrics in the activations' own scale (``sae`` as loaded from a checkpoint, scale folded in); a
    transcoder's against ``hook_out``. With ``frequencies``, also each latent's firing frequency (a list)."""
    sae.eval()
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    x = torch.from_numpy(store.acts(hook, rows).astype(np.float32))  # the held-out tenth, read once
    y = x if hook_out is None else torch.from_numpy(store.acts(hook_out, rows).astype(np.float32))
    norms = x.norm(dim=1)
    typical = norms <= outlier_norm * float(norms.median())
    err = torch.empty(len(x), dtype=torch.float64)  # squared error per token
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    for a in range(0, len(x), batch_size):
        z = sae.encode(x[a: a + batch_size])
        err[a: a + batch_size] = (y[a: a + batch_size] - sae.decode(z)).double().pow(2).sum(1)
        fired += (z > 0).sum(0)

    def fvu(sel: torch.Tensor) -> float:
        ys = y[sel].double()
        return float(err[sel].sum() / (ys - ys.mean(0)).pow(2).sum()) if len(ys) else float("nan")

    n = max(len(x), 1)
    freq = fired.double() / n
    out = {"tokens": len(x), "l0": float(fired.sum()) / n, "fvu": fvu(torch.ones_like(typical)),
           "fvu_without_outliers": fvu(typical), "outlier_tokens": int((~typical).sum()),
           "mse": float(err.sum()) / (n * y.shape[1]),
           "dead_fraction": float((fired == 0).double().mean()), "dense_fraction": float((freq > DENSE).double().mean())}
    if frequencies:
        out["frequencies"] = freq.tolist()
    return out
