"""TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

encode: z = ReLU(TopK((x - b_dec) @ W_enc + b_enc)); decode: x_hat = z @ W_dec + b_dec.
The same maths and parameter names as SAE Lens's ``topk`` architecture (``apply_b_dec_to_input``),
so a checkpoint moves between the two unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class TopKConfig:
    d_in: int
    d_sae: int
    k: int
    aux_k: int | None = None  # latents the AuxK loss may use (default d_in / 2, Appendix A.2 of the paper)
    aux_coef: float = 1 / 32  # AuxK weight (the paper's alpha)

    architecture = "topk"

    def __post_init__(self) -> None:
        if not 0 < self.k <= self.d_sae:
            raise ValueError(f"k must be in 1..d_sae ({self.d_sae}), got {self.k}")


class Forward(NamedTuple):
    recon: Tensor
    """Reconstruction [n, d_in]."""
    latents: Tensor
    """Latent activations [n, d_sae], k non-zero per row at most."""
    fvu: Tensor
    """Fraction of variance unexplained on this batch (against the batch mean)."""
    auxk: Tensor
    """AuxK loss: how well the dead latents reconstruct the residual, relative to its variance (0 without dead
    latents)."""


class TopKSAE(nn.Module):
    def __init__(self, cfg: TopKConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        w = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)  # [d_sae, d_in], rows at unit norm
        self.W_enc = nn.Parameter(w.T.clone())  # [d_in, d_sae]: the transpose, as the paper initialises it
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    def pre_acts(self, x: Tensor) -> Tensor:
        """[n, d_in] -> [n, d_sae] before the top-k."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """[n, d_in] -> dense [n, d_sae] with at most k non-zero per row."""
        return top_k(self.pre_acts(x), self.cfg.k)

    def decode(self, z: Tensor) -> Tensor:
        return z @ self.W_dec + self.b_dec

    def forward(self, x: Tensor, dead: Tensor | None = None) -> Forward:
        """``dead``: bool [d_sae] of latents that have not fired for a while (they feed the AuxK loss)."""
        pre = self.pre_acts(x)
        z = top_k(pre, self.cfg.k)
        recon = self.decode(z)
        err = x - recon
        total = (x - x.mean(0)).pow(2).sum()
        fvu = err.pow(2).sum() / total
        auxk = x.new_zeros(())
        if dead is not None and bool(dead.any()):
            # Dead latents try to explain what the live ones missed (the paper's AuxK), so they get
            # gradient again instead of staying dead.
            k_aux = min(int(dead.sum()), self.cfg.aux_k or self.cfg.d_in // 2)
            e_hat = top_k(pre.masked_fill(~dead, float("-inf")), k_aux) @ self.W_dec
            auxk = (err.detach() - e_hat).pow(2).sum() / (err.detach() - err.detach().mean(0)).pow(2).sum()
        return Forward(recon, z, fvu, auxk)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the gradient component along each decoder row, so that the step after renormalising does
        not just change the row's length (which the normalisation would undo)."""
        g = self.W_dec.grad
        if g is not None:
            g -= (g * self.W_dec).sum(1, keepdim=True) * self.W_dec


def top_k(pre: Tensor, k: int) -> Tensor:
    """[n, d_sae] -> the same shape, the k largest of each row through a ReLU, zeros elsewhere."""
    vals, idx = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())


def geometric_median(x: Tensor, iters: int = 50, eps: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm over the rows of ``x`` [n, d]: b_dec's starting point (robust to the few
    huge-norm tokens a mean would follow)."""
    m = x.median(0).values
    for _ in range(iters):
        w = 1.0 / (x - m).norm(dim=1).clamp_min(eps)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - m).norm() <= eps * max(1.0, float(m.norm())):
            return new
        m = new
    return m
