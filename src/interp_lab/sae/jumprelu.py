"""JumpReLU (Rajamanoharan et al. 2024, "Jumping Ahead"): a latent passes when its pre-activation exceeds
its own learned threshold; the L0 penalty and the thresholds get gradients through straight-through
estimators with a rectangle kernel of width ``bandwidth``. SAE Lens's ``jumprelu`` (``threshold``
saved in the weights).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from interp_lab.sae.base import SAEConfig, SparseCoder, jump, register

MIN_THRESHOLD = 1e-6


def _rect(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """z = x * H(x - t); dz/dx = H(x - t); dz/dt = -(t / bw) * rect((x - t) / bw) (the pseudo-derivative
    of the paper, eq. 11)."""

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, bw: float) -> Tensor:
        ctx.save_for_backward(x, t)
        ctx.bw = bw
        return x * (x > t)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, t = ctx.saved_tensors
        gt = -(t / ctx.bw) * _rect((x - t) / ctx.bw) * g
        return (x > t) * g, gt.sum(0), None


class _Step(torch.autograd.Function):
    """H(x - t), with dH/dt = -(1 / bw) * rect((x - t) / bw) (eq. 12); no gradient to x, as in the
    paper, so the L0 penalty moves the thresholds and not the encoder."""

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, bw: float) -> Tensor:
        ctx.save_for_backward(x, t)
        ctx.bw = bw
        return (x > t).to(x.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, t = ctx.saved_tensors
        return None, (-(1.0 / ctx.bw) * _rect((x - t) / ctx.bw) * g).sum(0), None


@register
class JumpReLUSAE(SparseCoder):
    architecture = "jumprelu"
    revives_dead = True

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None):
        super().__init__(cfg, generator)
        # Learned as it is, not in log space: Adam moves a parameter by about the learning rate per step,
        # which in log space is a factor of 1.002, far too slow for the few hundred steps of a CPU run;
        # kept positive after each step instead.
        self.threshold = nn.Parameter(torch.full((cfg.d_sae,), float(cfg.init_threshold)))

    def activate(self, pre: Tensor) -> Tensor:
        if not self.training:
            return jump(pre, self.threshold)
        return _JumpReLU.apply(pre.relu(), self.threshold, self.cfg.bandwidth)

    def sparsity(self, pre: Tensor, z: Tensor) -> Tensor:
        if not self.training:
            return (z > 0).sum(-1).float().mean() * self.cfg.l0_coef
        return self.cfg.l0_coef * _Step.apply(pre, self.threshold, self.cfg.bandwidth).sum(-1).mean()

    def saelens_architecture(self) -> tuple[str, dict[str, Any]]:
        return ("jumprelu_transcoder" if self.cfg.transcoder else "jumprelu"), {}

    def gate(self) -> Tensor:
        return self.threshold

    @torch.no_grad()
    def after_step(self, out) -> None:
        self.threshold.clamp_(min=MIN_THRESHOLD)

    def saelens_tensors(self) -> dict[str, Tensor]:
        return {"threshold": self.threshold.detach().clone()}

    def load_saelens_tensors(self, tensors: dict[str, Tensor]) -> None:
        with torch.no_grad():
            self.threshold.copy_(tensors["threshold"].float())
