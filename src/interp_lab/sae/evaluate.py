"""An SAE (or transcoder) spliced into the model it was trained on: CE-loss recovered and KL
(evidence.md), on the held-out documents of the store, plus the latent density histogram.

Splicing replaces the output hook's activation by the SAE's prediction from the input hook (for an SAE
the two are the same hook) at every position but each window's first, which SAE training leaves out
(an attention sink whose norm is a hundred times the median); the zero-ablation baseline zeroes the
same positions. Cross-entropy and KL are taken over the predictions those positions make.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_lab.sae.base import SparseCoder
from interp_lab.store.reader import Store


def heldout_windows(store: Store, heldout_rows: np.ndarray, max_tokens: int) -> list[list[int]]:
    """Token ids of the store's windows whose rows are held out, in store order, until ``max_tokens``."""
    t = store.tokens(["row", "position", "token_id"])
    rows = t.column("row").to_numpy()
    pos = t.column("position").to_numpy()
    ids = t.column("token_id").to_numpy()
    held = np.zeros(len(rows), dtype=bool)
    held[np.asarray(heldout_rows, dtype=np.int64)] = True
    starts = np.flatnonzero(pos == 0)
    ends = np.append(starts[1:], len(rows))
    out, total = [], 0
    for a, b in zip(starts, ends):
        if b - a > 2 and held[a + 1: b].all():
            out.append(ids[a:b].tolist())
            total += b - a
            if total >= max_tokens:
                break
    return out


@torch.no_grad()
def spliced_metrics(sae: SparseCoder, lm, store: Store, hook: str, heldout_rows: np.ndarray, *,
                    hook_out: str | None = None, max_tokens: int = 8192, batch_size: int = 8,
                    progress: Any = None) -> dict[str, Any]:
    """CE clean / spliced / zero-ablated, CE-loss recovered, and mean KL(clean || edited) in nats;
    ``progress(stage, done, total)`` hears of the windows run."""
    from interp_lab.harvest.run import pad_right
    from interp_lab.models.hooked import Edit, run

    out_hook = hook_out or hook
    sae.eval()
    windows = heldout_windows(store, heldout_rows, max_tokens)
    if not windows:
        raise ValueError(f"{store.root}: no held-out windows to evaluate on")
    sums = {"ce_clean": 0.0, "ce_sae": 0.0, "ce_zero": 0.0, "kl_sae": 0.0, "kl_zero": 0.0}
    n = 0
    pad = lm.tokenizer.pad_token_id or 0
    for a in range(0, len(windows), batch_size):
        if progress is not None:
            progress("CE-loss recovered (windows)", a, len(windows))
        batch = windows[a: a + batch_size]
        ids, mask = pad_right(batch, pad)
        inputs = {"input_ids": ids, "attention_mask": mask}
        T = ids.shape[1]
        positions = list(range(1, T))
        clean = run(lm.model, inputs, [hook], flat=True)
        x = clean.acts[hook].float()
        pred = sae.decode(sae.encode(x[:, 1:].reshape(-1, x.shape[-1]))).to(clean.acts[hook].dtype)
        spliced = run(lm.model, inputs, edits=[Edit(out_hook, "replace", pred, positions=positions)], flat=True).logits
        zeroed = run(lm.model, inputs, edits=[Edit(out_hook, "zero", positions=positions)], flat=True).logits
        # predictions from positions 1 .. len-2 of each window, of the tokens after them
        sel = torch.zeros_like(mask, dtype=torch.bool)
        for r, w in enumerate(batch):
            sel[r, 1: len(w) - 1] = True
        target = ids[:, 1:][sel[:, :-1]]
        logp = {}
        for name, logits in (("clean", clean.logits), ("sae", spliced), ("zero", zeroed)):
            lp = torch.log_softmax(logits[:, :-1][sel[:, :-1]].float(), -1)
            logp[name] = lp
            sums[f"ce_{name}"] += float(-lp.gather(1, target[:, None]).sum())
        p = logp["clean"].exp()
        for name in ("sae", "zero"):
            sums[f"kl_{name}"] += float((p * (logp["clean"] - logp[name])).sum())
        n += int(sel.sum())
    m = {k: v / n for k, v in sums.items()}
    m["ce_loss_recovered"] = (m["ce_zero"] - m["ce_sae"]) / (m["ce_zero"] - m["ce_clean"])
    m["tokens"] = n
    m["windows"] = len(windows)
    m["spliced_positions"] = "every position but each window's first"
    return m


def density_histogram(frequencies: list[float], path: str | os.PathLike, title: str) -> Path | None:
    """log10 firing frequency of every latent (dead ones counted apart), as a PNG; None when matplotlib
    (the ``plots`` extra) is not installed."""
    from interp_lab.io.figures import pyplot, save_png

    plt = pyplot(required=False)
    if plt is None:
        return None
    f = np.asarray(frequencies, dtype=np.float64)
    dead = int((f == 0).sum())
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    live = np.log10(f[f > 0])
    ax.hist(live, bins=60, color="#3b6ea5")
    ax.axvline(-1, color="#b44", lw=1, ls="--", label="dense (10%)")
    ax.set_xlabel("log10 firing frequency on held-out tokens")
    ax.set_ylabel("latents")
    ax.set_title(f"{title}\n{len(f):,} latents, {dead:,} dead", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
