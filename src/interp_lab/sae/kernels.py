"""The training step of top-k sparse coders (TopK, BatchTopK), touching only the latents they select.

The dense step computes pre = x W_enc + b_enc [n, d_sae], scatters the selected entries into a dense z,
decodes z W_dec and lets autograd go back through all of it: five more matmuls of the size of the
first, for a z in which k of d_sae entries per token (32 of 4,608) are non-zero. Here the forward keeps
the one dense matmul and the selection; the decoder is a gather-sum of the selected rows of W_dec
(``embedding_bag``), and the backward computes gradients at the selected entries only:

- d latent value = the output gradient . the latent's decoder row (``sampled_addmm``: those dot
  products and no others),
- d W_dec and d W_enc: each latent's selected tokens summed, weighted (an ``embedding_bag`` over the
  entries sorted by latent: a [d_sae, d] result written once, without a dense [n, d_sae] operand),
- d b_enc: the pre-activation gradients summed per latent; d b_dec through the encoder input, - W_enc
  d b_enc, since every token's input is x - b_dec.

The AuxK latents (the top dead latents of each token predicting the residual) are entries too: they are
decoded as tokens n..2n-1 of the same sparse matrix, so one gather-sum, one set of dot products and
one pass over the sorted entries serve both terms. Same mathematics as the dense path (tested to float
tolerance, the AuxK term with dead latents included); only the order of the float sums differs. The
encoder matmul may run in bfloat16 (``bf16``), the one place where precision is traded for speed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class Selection(NamedTuple):
    """The entries (token, latent) of a sparse [n, d_sae] matrix, token by token (CSR without values)."""

    crow: Tensor
    """[n + 1] int64: token i's entries are crow[i]:crow[i + 1]."""
    col: Tensor
    """[nnz] int64: the latent of each entry."""

    @staticmethod
    def per_token(idx: Tensor) -> Selection:
        """The same number of latents per token: idx [n, k]."""
        n, k = idx.shape
        return Selection(torch.arange(0, n * k + 1, k, device=idx.device), idx.reshape(-1))

    @staticmethod
    def from_flat(flat: Tensor, n: int, d_sae: int) -> tuple[Selection, Tensor]:
        """Flat indices into [n, d_sae] (any order) -> the selection and the order that sorts them."""
        order = flat.argsort()
        flat = flat[order]
        counts = torch.bincount(flat // d_sae, minlength=n)
        return Selection(torch.cat([counts.new_zeros(1), counts.cumsum(0)]), flat % d_sae), order

    @property
    def n(self) -> int:
        return len(self.crow) - 1

    def token(self) -> Tensor:
        """[nnz] the token of each entry."""
        return torch.repeat_interleave(torch.arange(self.n, device=self.col.device), self.crow.diff())

    def stacked(self, other: Selection) -> Selection:
        """``other``'s tokens appended as tokens n.. of one matrix."""
        return Selection(torch.cat([self.crow, other.crow[1:] + self.crow[-1]]), torch.cat([self.col, other.col]))

    def gather_sum(self, weights: Tensor, table: Tensor) -> Tensor:
        """[n, d]: for each token the sum of weights x table[latent] (table [d_sae, d])."""
        return F.embedding_bag(self.col, table, self.crow[:-1], mode="sum", per_sample_weights=weights)

    def dots(self, a: Tensor, b_t: Tensor) -> Tensor:
        """[nnz]: a[token] . b_t[:, latent] for each entry (a [n, d], b_t [d, d_sae])."""
        # zeros, not empty: beta=0 still multiplies these values, and garbage in them can be NaN
        with warnings.catch_warnings():  # "sparse CSR support is in beta": sampled_addmm is what we need
            warnings.simplefilter("ignore", UserWarning)
            s = torch.sparse_csr_tensor(self.crow, self.col, a.new_zeros(len(self.col)), (self.n, b_t.shape[1]),
                                        check_invariants=False)
        return torch.sparse.sampled_addmm(s, a, b_t, beta=0.0).values()

    def dense(self, values: Tensor, d_sae: int) -> Tensor:
        """[n, d_sae] with ``values`` [nnz] at the entries, zeros elsewhere."""
        z = values.new_zeros(self.n * d_sae)
        return z.index_put_((self.token() * d_sae + self.col,), values).view(self.n, d_sae)


class ByLatent(NamedTuple):
    """A selection's entries sorted by latent, for sums over each latent's tokens."""

    order: Tensor
    """[nnz] entry indices, latent by latent."""
    start: Tensor
    """[d_sae] where each latent's entries start in ``order``."""

    @staticmethod
    def of(sel: Selection, d_sae: int) -> ByLatent:
        order = sel.col.argsort(stable=True)
        counts = torch.bincount(sel.col, minlength=d_sae)
        return ByLatent(order, torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]]))

    def sum_rows(self, rows: Tensor, weights: Tensor, src: Tensor) -> Tensor:
        """[d_sae, d]: for each latent the sum over its entries e of weights[e] x src[rows[e]]."""
        return F.embedding_bag(rows[self.order], src, self.start, mode="sum", per_sample_weights=weights[self.order])


Select = Callable[[Tensor], tuple[Selection, Tensor]]
"""pre [n, d_sae] -> the selected entries and their pre-activations [nnz] (the latents are their ReLU)."""


class SparseOut(NamedTuple):
    recon: Tensor
    """[n, d_out]: the selected latents decoded, + b_dec."""
    aux_recon: Tensor | None
    """[n, d_out]: the AuxK latents decoded (no b_dec), None without dead latents."""
    latents: Tensor
    """[n, d_sae] dense, without gradient."""
    l0: Tensor
    """Mean number of non-zero latents per token."""
    fired: Tensor
    """bool [d_sae]: latents non-zero on some token of the batch."""


def sparse_coding(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, select: Select, *,
                  subtract_b_dec: bool, dead: Tensor | None = None, k_aux: int = 0, bf16: bool = False) -> SparseOut:
    """The forward of a top-k sparse coder in training, differentiable in the four parameters. ``dead``
    (bool [d_sae]) with ``k_aux`` > 0: also the AuxK reconstruction from each token's k_aux largest
    pre-activations among the dead latents (through a ReLU, as the dense path's ``top_k``). ``bf16``: the
    encoder matmul in bfloat16 (the selection and the latent values come from its rounded result; the
    decoder and every gradient stay float32)."""
    aux = dead is not None and k_aux > 0
    recon, aux_recon, latents, l0, fired = _SparseCoding.apply(x, W_enc, b_enc, W_dec, b_dec, select, subtract_b_dec,
                                                               dead if aux else None, k_aux, bf16)
    return SparseOut(recon, aux_recon if aux else None, latents, l0, fired)


@cache
def fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX): about twice the
    float32 speed there, an emulation slower than float32 elsewhere."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence the getattr
    return any(getattr(torch.cpu, f, lambda: False)() for f in checks)


def top_dead(pre: Tensor, dead: Tensor, k_aux: int) -> tuple[Selection, Tensor]:
    """Each token's k_aux largest pre-activations among the dead latents (k_aux <= their number)."""
    cols = dead.nonzero().squeeze(1)
    vals, j = pre[:, cols].topk(k_aux, dim=-1, sorted=False)
    return Selection.per_token(cols[j]), vals.reshape(-1)


class _SparseCoding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W_enc, b_enc, W_dec, b_dec, select, subtract_b_dec, dead, k_aux, bf16):
        x_in = x - b_dec if subtract_b_dec else x
        n, d_sae = len(x), W_enc.shape[1]
        if bf16:
            pre = torch.addmm(b_enc.bfloat16(), x_in.bfloat16(), W_enc.bfloat16())
        else:
            pre = torch.addmm(b_enc, x_in, W_enc)
        sel, vals = select(pre)
        n_main = len(sel.col)
        if dead is not None:
            aux_sel, aux_vals = top_dead(pre, dead, k_aux)
            sel, vals = sel.stacked(aux_sel), torch.cat([vals, aux_vals])
        acts = vals.float().relu()
        out = sel.gather_sum(acts, W_dec)
        main, main_col = acts[:n_main], sel.col[:n_main]
        fired = torch.zeros(d_sae, dtype=torch.bool, device=x.device)
        fired[main_col[main > 0]] = True
        latents = Selection(sel.crow[: n + 1], main_col).dense(main, d_sae)
        l0 = (main > 0).sum() / n
        ctx.save_for_backward(x_in, W_enc, W_dec, sel.crow, sel.col, acts)
        ctx.subtract_b_dec, ctx.n = subtract_b_dec, n
        ctx.mark_non_differentiable(latents, l0, fired)
        ctx.set_materialize_grads(False)  # no [n, d_sae] of zeros for the latents' gradient
        recon = out[:n] + b_dec
        return recon, (out[n:] if dead is not None else recon.new_zeros(())), latents, l0, fired

    @staticmethod
    def backward(ctx, g_recon, g_aux, *_):
        x_in, W_enc, W_dec, crow, col, acts = ctx.saved_tensors
        sel, n, d_sae = Selection(crow, col), ctx.n, W_dec.shape[0]
        # the output gradient of every stacked token: the reconstruction's, then AuxK's
        # (None for an output the loss does not use)
        g_recon = W_dec.new_zeros(n, W_dec.shape[1]) if g_recon is None else g_recon
        if sel.n > n:
            g = torch.cat([g_recon, torch.zeros_like(g_recon) if g_aux is None else g_aux])
        else:
            g = g_recon
        d_pre = sel.dots(g, W_dec.T) * (acts > 0)
        by_latent = ByLatent.of(sel, d_sae)
        token = sel.token()
        d_W_dec = by_latent.sum_rows(token, acts, g)
        d_W_enc = by_latent.sum_rows(token % n, d_pre, x_in).T
        d_b_enc = torch.zeros_like(W_enc[0]).index_add_(0, col, d_pre)
        d_b_dec = g_recon.sum(0)
        if ctx.subtract_b_dec:
            d_b_dec = d_b_dec - W_enc @ d_b_enc
        return None, d_W_enc, d_b_enc, d_W_dec, d_b_dec, None, None, None, None, None
