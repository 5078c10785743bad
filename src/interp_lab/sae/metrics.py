"""Reconstruction metrics of evidence.md on held-out store rows: FVU (with and without the tokens whose
norm exceeds 10x the median), L0, dead and dense fractions."""

from __future__ import annotations

import numpy as np
import torch

from interp_lab.sae.topk import TopKSAE
from interp_lab.store.reader import Store

DENSE = 0.1  # a latent non-zero on more than this fraction of tokens is dense


@torch.no_grad()
def reconstruction_metrics(sae: TopKSAE, store: Store, hook: str, rows: np.ndarray, *, batch_size: int = 8192,
                           outlier_norm: float = 10.0) -> dict[str, float | int]:
    """Metrics in the activations' own scale (``sae`` as loaded from a checkpoint, scale folded in)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    held = torch.from_numpy(store.acts(hook, rows).astype(np.float32))  # the held-out tenth, read once
    norms = held.norm(dim=1)
    typical_all = norms <= outlier_norm * float(norms.median())
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    # FVU = sum |err|^2 / (sum |x|^2 - |sum x|^2 / n), accumulated per subset in one pass
    acc = {k: {"n": 0, "sx": 0.0, "sxx": 0.0, "see": 0.0} for k in ("all", "typical")}
    l0 = 0.0
    for a in range(0, len(rows), batch_size):
        x, typical = held[a: a + batch_size], typical_all[a: a + batch_size]
        z = sae.encode(x)
        err = (x - sae.decode(z)).pow(2).sum(1)
        nz = z > 0
        fired += nz.sum(0)
        l0 += float(nz.sum())
        for key, sel in (("all", torch.ones(len(x), dtype=torch.bool)), ("typical", typical)):
            s = acc[key]
            xs = x[sel].double()
            s["n"] += len(xs)
            s["sx"] = s["sx"] + xs.sum(0)
            s["sxx"] += float(xs.pow(2).sum())
            s["see"] += float(err[sel].double().sum())
    n = len(rows)
    out: dict[str, float | int] = {"tokens": n, "l0": l0 / max(n, 1)}
    for key, s in acc.items():
        var = s["sxx"] - float(torch.as_tensor(s["sx"]).pow(2).sum()) / s["n"] if s["n"] else float("nan")
        out["fvu" if key == "all" else "fvu_without_outliers"] = s["see"] / var if s["n"] else float("nan")
    out["outlier_tokens"] = int(acc["all"]["n"] - acc["typical"]["n"])
    freq = fired.double() / max(n, 1)
    out["dead_fraction"] = float((fired == 0).double().mean())
    out["dense_fraction"] = float((freq > DENSE).double().mean())
    return out
