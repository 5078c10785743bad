"""BatchTopK (Bussmann et al. 2024): in training, the k x batch largest pre-activations of the whole
batch pass, so a token may use more or fewer than k latents; at inference a single threshold (the moving
average of the smallest value that passed in training, recalibrated on a 16k-token sample when
training ends) replaces the batch, which makes the trained SAE a JumpReLU one; it is saved as SAE Lens's
``jumprelu`` with that threshold for every latent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from interp_lab.sae.base import Forward, SAEConfig, SparseCoder, jump, register
from interp_lab.sae.kernels import Selection


@register
class BatchTopKSAE(SparseCoder):
    architecture = "batchtopk"
    uses_auxk = True
    selects = True

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None):
        super().__init__(cfg, generator)
        # double precision: the moving average takes thousands of small steps
        self.register_buffer("threshold", torch.zeros((), dtype=torch.float64))

    def batch_top(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """Values and flat indices of the k x n largest of ReLU(pre) over the whole batch [n, d_sae] (in a
        torchrun run, this process's of the k x n largest over every process's rows)."""
        flat = pre.relu().flatten()
        if self.ranks is not None:
            return self.ranks.top(flat, self.cfg.k * self.ranks.rows(pre.shape[0]))
        return flat.topk(min(self.cfg.k * pre.shape[0], flat.numel()), sorted=False)

    def activate(self, pre: Tensor) -> Tensor:
        if not self.training:
            return jump(pre, self.threshold.to(pre.dtype))
        vals, idx = self.batch_top(pre)
        return pre.new_zeros(pre.numel()).scatter_(0, idx, vals).view_as(pre)

    def select(self, pre: Tensor) -> tuple[Selection, Tensor]:
        vals, idx = self.batch_top(pre)
        sel, order = Selection.from_flat(idx, *pre.shape)
        return sel, vals[order]

    @torch.no_grad()
    def after_step(self, out: Forward) -> None:
        passed = out.latents[out.latents > 0]
        low = passed.min() if passed.numel() else passed.new_tensor(float("inf"))
        if self.ranks is not None:
            low = self.ranks.min(low)  # the smallest that passed in the whole batch
        if torch.isfinite(low):
            # the first batch sets it: a moving average started at zero would still be far below the
            # batch minimum after the few hundred steps of a short run
            lr = self.cfg.threshold_lr if float(self.threshold) > 0 else 1.0
            self.threshold.mul_(1 - lr).add_(lr * low.double())

    @torch.no_grad()
    def finish(self, x: Tensor) -> None:
        # The moving average lags while latent values still change fast (a time constant of 100 steps is
        # longer than a short run: after 40k tokens it gave L0 4 for k 16), so the inference threshold is
        # set from one large batch instead: the cut that keeps k latents per token on average over the
        # sample, which is what the batch top-k did in training.
        kept = self.batch_top(self.pre_acts(x)).values
        self.threshold.fill_(float(kept[kept > 0].min()) if bool((kept > 0).any()) else 0.0)

    def saelens_architecture(self) -> tuple[str, dict[str, Any]]:
        return ("jumprelu_transcoder" if self.cfg.transcoder else "jumprelu"), {}

    def saelens_tensors(self) -> dict[str, Tensor]:
        return {"threshold": self.threshold.float().expand(self.cfg.d_sae).contiguous()}
