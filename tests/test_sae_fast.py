"""The sparse training kernels (sae/kernels.py) compute what the dense path computes: the same loss, AuxK
term included, and the same gradient of every parameter."""

import pytest

torch = pytest.importorskip("torch")

from interp_lab.sae.base import SAEConfig, make_sae  # noqa: E402

PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")
# dead latents: none; fewer than aux_k (every dead latent in the AuxK selection); more than aux_k (16 = d_in / 2)
DEAD = (0, 5, 100)
CODERS = [("topk", None), ("batchtopk", None), ("batchtopk", 24)]


def pair(arch: str, d_out: int | None):
    """The same coder twice, one on the sparse kernels and one on the dense path, biases off zero."""
    cfg = SAEConfig(arch, d_in=32, d_sae=256, d_out=d_out, k=8)
    sparse, dense = (make_sae(cfg, torch.Generator().manual_seed(1)).train() for _ in range(2))
    dense.sparse_kernels = False
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in (sparse.b_enc, sparse.b_dec):
            p.normal_(0, 0.1, generator=g)
        dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def batch(d_out: int | None, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(200, 32, generator=g), (torch.randn(200, d_out, generator=g) if d_out else None)


def dead_mask(n_dead: int) -> torch.Tensor:
    dead = torch.zeros(256, dtype=torch.bool)
    dead[torch.randperm(256, generator=torch.Generator().manual_seed(4))[:n_dead]] = True
    return dead


@pytest.mark.parametrize("n_dead", DEAD)
@pytest.mark.parametrize("coder", CODERS, ids=lambda c: c[0] + ("-transcoder" if c[1] else ""))
def test_sparse_kernels_give_the_dense_loss_and_gradients(coder, n_dead):
    sparse, dense = pair(*coder)
    x, y = batch(coder[1])
    dead = dead_mask(n_dead)
    a, b = sparse(x, y, dead), dense(x, y, dead)
    assert (float(a.auxk.detach()) > 0) == (n_dead > 0)
    for field in ("fvu", "auxk", "loss", "l0"):
        got, want = (float(getattr(o, field).detach()) for o in (a, b))
        assert got == pytest.approx(want, rel=1e-5, abs=1e-7), field
    assert torch.equal(a.latents, b.latents.detach()) and torch.equal(a.fired, b.fired)
    torch.testing.assert_close(a.recon, b.recon, rtol=1e-5, atol=1e-6)
    a.loss.backward()
    b.loss.backward()
    for name in PARAMS:
        ga, gb = getattr(sparse, name).grad, getattr(dense, name).grad
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6 * float(gb.abs().max()), msg=name)


def test_a_training_step_on_the_kernels_keeps_the_decoder_constraint():
    """remove_parallel_grad and the renormalisation act on the kernels' gradients as on the dense ones."""
    sparse, dense = pair("topk", None)
    x, _ = batch(None)
    for sae in (sparse, dense):
        opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
        for step in range(3):
            opt.zero_grad()
            sae(x, dead=dead_mask(5) if step else None).loss.backward()
            sae.remove_parallel_grad()
            assert float((sae.W_dec.grad * sae.W_dec.detach()).sum(1).abs().max()) < 1e-6
            opt.step()
            sae.normalize_decoder()
    for name in PARAMS:
        torch.testing.assert_close(getattr(sparse, name), getattr(dense, name), rtol=1e-4, atol=1e-5, msg=name)
    norms = sparse.W_dec.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_inference_stays_dense():
    sparse, dense = pair("topk", None)
    x, _ = batch(None)
    with torch.no_grad():
        assert torch.equal(sparse.eval()(x).latents, dense.eval()(x).latents)


def test_the_bf16_encoder_selects_nearly_the_same_latents_with_nearly_the_same_gradients():
    from interp_lab.sae.kernels import sparse_coding

    sae, _ = pair("topk", None)
    x, _ = batch(None)
    dead = dead_mask(5)
    outs, grads = [], []
    for bf16 in (False, True):
        sae.zero_grad()
        out = sparse_coding(x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, sae.select, subtract_b_dec=True,
                            dead=dead, k_aux=5, bf16=bf16)
        ((x - out.recon).pow(2).sum() + (x - out.aux_recon).pow(2).sum()).backward()
        outs.append(out)
        grads.append(torch.cat([getattr(sae, n).grad.flatten() for n in PARAMS]))
    a, b = outs[0].latents, outs[1].latents
    # a token's choice differs only where its k-th and (k+1)-th pre-activations tie to bf16 precision
    assert ((a > 0) == (b > 0)).all(1).float().mean() > 0.9
    both = (a > 0) & (b > 0)
    torch.testing.assert_close(b[both], a[both], rtol=1e-2, atol=1e-2 * float(a.max()))
    assert float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)) > 0.99
