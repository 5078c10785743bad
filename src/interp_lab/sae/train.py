"""Training a sparse autoencoder on a store's activations (``train_sae``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from interp_lab.errors import UsageError
from interp_lab.harvest.scan import OUTLIER_NORM  # tokens above this many times the median norm are left out
from interp_lab.sae.data import shuffled_batches, split_rows
from interp_lab.sae.topk import TopKConfig, TopKSAE, geometric_median
from interp_lab.store.reader import Store


@dataclass(frozen=True)
class TrainConfig:
    expansion_factor: int = 8
    latent_dim: int | None = None  # d_sae; default expansion_factor x d_in
    k: int = 32
    tokens: int = 200_000  # training tokens (the loop stops there, passing over the data again if needed)
    batch_size: int = 4096
    # Adam at 2e-3 is what short CPU runs need: the width-scaled 2e-4 / sqrt(d_sae / 16384) of the paper
    # is made for billions of tokens and leaves FVU far higher after 200k.
    lr: float = 2e-3
    dead_after_tokens: int = 50_000  # a latent silent for this many tokens counts as dead for AuxK
    seed: int = 0


@dataclass
class TrainResult:
    sae: TopKSAE
    scale: float  # inputs were multiplied by this to unit mean squared norm during training
    history: list[dict[str, float]]
    outlier_threshold: float
    tokens_seen: int


def train_sae(store: str | os.PathLike | Store, hook: str, cfg: TrainConfig = TrainConfig()) -> TrainResult:
    """A TopK SAE on ``hook`` of ``store``'s training rows (held-out documents never seen)."""
    st = store if isinstance(store, Store) else Store(store)
    if hook not in st.hooks:
        raise UsageError(f"{st.root}: no hook {hook!r} (it has {', '.join(st.hooks)})")
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = split_rows(st).train
    if len(rows) < cfg.batch_size:
        raise UsageError(f"{st.root}: {len(rows)} training tokens, fewer than one batch of {cfg.batch_size}")
    sample_rows = np.sort(np.random.default_rng(cfg.seed).choice(rows, min(len(rows), 16384), replace=False))
    sample = torch.from_numpy(st.acts(hook, sample_rows).astype(np.float32))
    norms = sample.norm(dim=1)
    threshold = float(OUTLIER_NORM * norms.median())
    sample = sample[norms <= threshold]
    scale = float(1.0 / sample.pow(2).sum(1).mean().sqrt())  # unit mean squared norm
    d_in = sample.shape[1]
    sae = TopKSAE(TopKConfig(d_in=d_in, d_sae=cfg.latent_dim or cfg.expansion_factor * d_in, k=cfg.k), gen)
    with torch.no_grad():
        sae.b_dec.copy_(geometric_median(sample * scale))
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=6.25e-10)
    last_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    seen, epoch, history = 0, 0, []
    while seen < cfg.tokens:
        for batch in shuffled_batches(st, hook, rows, cfg.batch_size, cfg.seed + epoch):
            x = torch.from_numpy(batch)
            x = x[x.norm(dim=1) <= threshold] * scale
            dead = (seen - last_fired) >= cfg.dead_after_tokens
            out = sae(x, dead if seen >= cfg.dead_after_tokens else None)
            loss = out.fvu + sae.cfg.aux_coef * out.auxk
            opt.zero_grad(set_to_none=True)
            loss.backward()
            sae.remove_parallel_grad()
            opt.step()
            sae.normalize_decoder()
            seen += len(x)
            fired = (out.latents > 0).any(0)
            last_fired[fired] = seen
            history.append({"tokens": seen, "fvu": float(out.fvu.detach()), "l0": float((out.latents > 0).sum(1).float().mean()),
                            "dead_fraction": float(dead.float().mean()), "auxk": float(out.auxk.detach())})
            if seen >= cfg.tokens:
                break
        epoch += 1
    return TrainResult(sae, scale, history, threshold, seen)

