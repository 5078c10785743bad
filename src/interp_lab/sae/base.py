"""What every sparse coder shares: the parameters, the decoder, the loss, and the SAE Lens names.

A sparse coder maps x [n, d_in] to latents z [n, d_sae] and back to a prediction of y [n, d_out]:
an autoencoder predicts y = x (``d_out`` None, b_dec subtracted from the input first, SAE Lens's
``apply_b_dec_to_input``); a transcoder predicts another hook's activations (``d_out`` set, the input
used as it is). The architectures (one file each) differ only in how pre-activations become latents
and in the sparsity term of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from interp_lab.sae.kernels import Selection, fast_bf16, sparse_coding

if TYPE_CHECKING:
    from interp_lab.sae.distributed import Ranks


@dataclass(frozen=True)
class SAEConfig:
    architecture: str
    """topk, batchtopk, jumprelu or relu (ReLU + L1, SAE Lens's ``standard``)."""
    d_in: int
    d_sae: int
    d_out: int | None = None
    """A transcoder's output width; None for an autoencoder."""
    k: int = 32
    """Latents per token (topk), or on average over a batch (batchtopk)."""
    aux_k: int | None = None
    """Latents the AuxK loss may use (default d_in / 2, Appendix A.2 of Gao et al.)."""
    aux_coef: float = 1 / 32
    """AuxK weight (the paper's alpha)."""
    l1_coef: float = 0.05
    """relu: weight of the mean L1 norm of the latents (inputs at unit mean squared norm)."""
    l0_coef: float = 3e-3
    """jumprelu: weight of the mean L0, made differentiable by the straight-through estimator."""
    bandwidth: float = 0.01
    """jumprelu: width of the rectangle kernel of the straight-through estimator."""
    init_threshold: float = 0.02
    """jumprelu: every latent's threshold at the start."""
    threshold_lr: float = 0.01
    """batchtopk: moving-average rate of the inference threshold."""
    apply_b_dec_to_input: bool = True
    """Autoencoders only: subtract b_dec before encoding (always false for transcoders)."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r} ({', '.join(ARCHITECTURES)})")
        if self.architecture in ("topk", "batchtopk") and not 0 < self.k <= self.d_sae:
            raise ValueError(f"k must be in 1..d_sae ({self.d_sae}), got {self.k}")
        if self.d_out is not None and self.apply_b_dec_to_input:
            object.__setattr__(self, "apply_b_dec_to_input", False)  # b_dec lives in the output space

    @property
    def transcoder(self) -> bool:
        return self.d_out is not None


class Forward(NamedTuple):
    recon: Tensor
    """Prediction [n, d_out] (the input's reconstruction for an autoencoder)."""
    latents: Tensor
    """Latent activations [n, d_sae]."""
    fvu: Tensor
    """Fraction of variance unexplained on this batch (against the batch mean). In a torchrun run (the
    batch split over ``SparseCoder.ranks``), this process's share of it, and so for the other losses: the
    shares sum to the whole batch's value."""
    auxk: Tensor
    """The dead-latent term: AuxK (how well the dead latents predict what the live ones missed, relative to
    its variance), or for ReLU-style architectures how far below their gate the dead latents sit; 0 without
    dead latents."""
    sparsity: Tensor
    """The weighted sparsity penalty (L1 or L0; 0 where top-k sets the sparsity)."""
    loss: Tensor
    """What training minimises: fvu + aux_coef * auxk + sparsity."""
    l0: Tensor
    """Mean number of non-zero latents per token (of this process's rows, in a torchrun run)."""
    fired: Tensor
    """bool [d_sae]: latents non-zero on some token of the batch (likewise)."""


class SparseCoder(nn.Module):
    """Parameters as SAE Lens names them: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out],
    b_dec [d_out]."""

    architecture: ClassVar[str]
    uses_auxk: ClassVar[bool] = False
    """TopK-style: dead latents are ranked among themselves to predict what the live ones missed."""
    revives_dead: ClassVar[bool] = False
    """ReLU-style: a dead latent's pre-activation is below its gate everywhere, so AuxK's ReLU would give
    it no gradient; instead its pre-activations are pulled up towards the gate."""
    selects: ClassVar[bool] = False
    """Top-k style: training selects a few entries of the pre-activations (``select``), so it runs on the
    sparse kernels (kernels.py) unless ``sparse_kernels`` is switched off."""
    ranks: Ranks | None = None
    """Set while a torchrun run trains: each process holds its rows of the batch, and the batch statistics
    (the FVU's variance, means over tokens, batchtopk's top k x batch) are taken over all of them."""

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        d_out = cfg.d_out or cfg.d_in
        w = torch.randn(cfg.d_sae, d_out, generator=generator)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)  # rows at unit norm
        # The encoder starts as the decoder's transpose (Gao et al.); a transcoder's input space differs
        # from its output space, so its encoder starts as an independent random draw of the same scale.
        enc = w.T.clone() if d_out == cfg.d_in else torch.randn(cfg.d_in, cfg.d_sae, generator=generator) / cfg.d_in ** 0.5
        self.W_enc = nn.Parameter(enc)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        # training through kernels.py where the architecture selects (False: the dense path), with the
        # encoder matmul in bfloat16 where that is fast (the CPU's bf16 instructions; train_sae sets it)
        self.sparse_kernels = True
        self.train_bf16 = False

    # -- the data path ---------------------------------------------------------------------------------
    def pre_acts(self, x: Tensor) -> Tensor:
        """[n, d_in] -> [n, d_sae] before the activation."""
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """Pre-activations -> latents as training sees them (with gradients where the method has them)."""
        raise NotImplementedError

    def select(self, pre: Tensor) -> tuple[Selection, Tensor]:
        """Training, top-k style: the entries of pre [n, d_sae] that become latents, and their
        pre-activations [nnz] (the latents are their ReLU); what ``activate`` keeps, as a sparse matrix."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        """[n, d_in] -> dense latents [n, d_sae], as inference (and SAE Lens) computes them."""
        return self.activate(self.pre_acts(x))

    def decode(self, z: Tensor) -> Tensor:
        return z @ self.W_dec + self.b_dec

    def sparsity(self, pre: Tensor | None, z: Tensor) -> Tensor:
        """The sparsity penalty (``pre`` None where the sparse kernels trained: top-k style, no penalty)."""
        return z.new_zeros(())

    def gate(self) -> Tensor:
        """What a pre-activation must exceed to fire, per latent (ReLU-style architectures)."""
        return self.b_enc.new_zeros(self.cfg.d_sae)

    def forward(self, x: Tensor, y: Tensor | None = None, dead: Tensor | None = None) -> Forward:
        """``y``: a transcoder's target (default: x). ``dead``: bool [d_sae] of latents silent for a while
        (they feed the AuxK loss where the architecture has one)."""
        y = x if y is None else y
        # Dead latents try to explain what the live ones missed (Gao et al.'s AuxK), so they get gradient
        # again instead of staying dead.
        k_aux = 0
        if self.uses_auxk and dead is not None and bool(dead.any()):
            k_aux = min(int(dead.sum()), self.cfg.aux_k or self.cfg.d_in // 2)
        pre = None
        if self.training and self.selects and self.sparse_kernels:
            recon, e_hat, z, l0, fired = sparse_coding(
                x, self.W_enc, self.b_enc, self.W_dec, self.b_dec, self.select,
                subtract_b_dec=self.cfg.apply_b_dec_to_input, dead=dead, k_aux=k_aux,
                bf16=self.train_bf16 and x.device.type == "cpu" and fast_bf16())
        else:
            pre = self.pre_acts(x)
            z = self.activate(pre)
            recon = self.decode(z)
            e_hat = top_k(pre.masked_fill(~dead, float("-inf")), k_aux) @ self.W_dec if k_aux else None
            nonzero = z.detach() > 0
            l0, fired = torch.count_nonzero(nonzero) / len(x), nonzero.any(0)
        err = y - recon
        r = self.ranks
        fvu = err.pow(2).sum() / ((y - y.mean(0)).pow(2).sum() if r is None else r.spread(y))
        part = 1.0 if r is None else len(x) / r.rows(len(x))  # this process's share of a mean over tokens
        auxk = x.new_zeros(())
        if e_hat is not None:
            e = err.detach()
            auxk = (e - e_hat).pow(2).sum() / ((e - e.mean(0)).pow(2).sum() if r is None else r.spread(e))
        elif self.revives_dead and dead is not None and bool(dead.any()):
            auxk = (self.gate().detach()[dead] - pre[:, dead]).relu().mean()
            auxk = auxk if r is None else auxk * part
        sparsity = self.sparsity(pre, z)
        sparsity = sparsity if r is None else sparsity * part
        return Forward(recon, z, fvu, auxk, sparsity, fvu + self.cfg.aux_coef * auxk + sparsity, l0, fired)

    def after_step(self, out: Forward) -> None:
        """State an architecture updates outside the gradient (batchtopk's threshold)."""

    def finish(self, x: Tensor) -> None:
        """Once training ends, with a sample of (scaled) training inputs: set what inference needs."""

    # -- the decoder constraint ------------------------------------------------------------------------
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

    # -- SAE Lens ----------------------------------------------------------------------------------------
    def saelens_architecture(self) -> tuple[str, dict[str, Any]]:
        """The architecture SAE Lens loads this as, and the cfg.json keys that go with it."""
        raise NotImplementedError

    def saelens_tensors(self) -> dict[str, Tensor]:
        """Tensors beyond W_enc, b_enc, W_dec, b_dec (in the inference form)."""
        return {}

    def load_saelens_tensors(self, tensors: dict[str, Tensor]) -> None:
        """The inverse of ``saelens_tensors``."""


ARCHITECTURES: dict[str, type[SparseCoder]] = {}


def register(cls: type[SparseCoder]) -> type[SparseCoder]:
    ARCHITECTURES[cls.architecture] = cls
    return cls


def make_sae(cfg: SAEConfig, generator: torch.Generator | None = None) -> SparseCoder:
    return ARCHITECTURES[cfg.architecture](cfg, generator)


def top_k(pre: Tensor, k: int) -> Tensor:
    """[n, d_sae] -> the same shape, the k largest of each row through a ReLU, zeros elsewhere."""
    vals, idx = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())


def jump(pre: Tensor, threshold: Tensor) -> Tensor:
    """JumpReLU at inference: a pre-activation passes if it exceeds its latent's threshold (and 0)."""
    return pre * ((pre > threshold) & (pre > 0))


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


# The architectures register themselves on import; importing them here makes every name known as soon as
# the base is (they import only what is defined above).
from interp_lab.sae import batchtopk, jumprelu, relu, topk  # noqa: E402, F401
