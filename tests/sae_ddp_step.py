"""Run by tests/test_sae_ddp.py under torchrun: one training step of every architecture, each process on its
share of a batch, against the same step on the whole batch in this process. Prints ``ok <arch>`` per
architecture on rank 0; exits non-zero (an AssertionError naming the quantity) on the first mismatch."""

import torch

from interp_lab.sae.base import SAEConfig, make_sae
from interp_lab.sae.distributed import process_group

ARCHS = [("topk", None), ("batchtopk", None), ("jumprelu", None), ("relu", None), ("batchtopk", 12), ("relu", 12)]


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), f"{what}: max abs diff {(a - b).abs().max():.3g}"


def step(sae, x, y, dead):
    """Loss terms, gradients and the batchtopk threshold after one step (the gradients summed over the
    processes when the SAE has ranks)."""
    sae.zero_grad(set_to_none=True)
    out = sae(x, y, dead)
    out.loss.backward()
    if sae.ranks is not None:
        sae.ranks.sum_grads(sae.parameters())
    sae.after_step(out)
    return out, {n: p.grad.clone() for n, p in sae.named_parameters()}


with process_group() as ranks:
    assert ranks is not None and ranks.world_size == 2, "run this under torchrun --nproc_per_node 2"
    gen = torch.Generator().manual_seed(0)
    n = 51  # shares of 25 and 26 tokens
    for arch, d_out in ARCHS:
        cfg = SAEConfig(arch, d_in=16, d_sae=64, d_out=d_out, k=4, init_threshold=0.05)
        sae = make_sae(cfg, torch.Generator().manual_seed(1)).train()
        x = torch.randn(n, 16, generator=gen) + 0.5  # a mean away from 0, as in the residual stream
        y = None if d_out is None else torch.randn(n, d_out, generator=gen)
        dead = torch.arange(64) >= 40  # AuxK / the pull towards the gate on
        whole, grads = step(sae, x, y, dead)
        threshold = {k: v.clone() for k, v in sae.named_buffers()}
        for v in sae.buffers():
            v.zero_()  # the step again from the same start
        sae.ranks = ranks
        share = ranks.share(n)
        part, part_grads = step(sae, x[share], None if y is None else y[share], dead)
        for name in ("fvu", "auxk", "sparsity", "loss"):
            close(ranks.sum(getattr(part, name).detach()), getattr(whole, name).detach(), f"{arch} {name}")
        assert torch.equal(part.latents.detach() > 0, whole.latents.detach()[share] > 0), f"{arch}: latents that fire"
        close(part.latents.detach(), whole.latents.detach()[share], f"{arch} latents")
        for k in grads:
            close(part_grads[k], grads[k], f"{arch} d loss / d {k}")
        for k, v in sae.named_buffers():
            close(v, threshold[k], f"{arch} {k}")
        if ranks.lead:
            print("ok", arch + ("-transcoder" if d_out else ""), flush=True)
