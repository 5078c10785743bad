"""Output-side fingerprints on SmolLM2: a feature's write vector through the final norm and unembedding."""

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.realmodel
def test_vocab_signatures_of_a_direction_a_neuron_and_a_residual_dimension(smollm2):
    from interp_lab.interventions.features import DirectionSpace, resolve_targets
    from interp_lab.interventions.vocab import residual_write, vocab_signatures
    from interp_lab.models.hooks import family_of, get_module

    tok, model = smollm2.tokenizer, smollm2.model
    fam = family_of(model)
    gamma = get_module(model, fam.final_norm).weight.detach().float()
    w_u = model.get_output_embeddings().weight.detach().float()
    v = torch.randn(576, generator=torch.Generator().manual_seed(0)).numpy()
    d = DirectionSpace("blocks.29.hook_resid_post", 29, v[None], ["L29:D0"])
    from interp_lab.interventions.features import Target

    targets = [Target(d, 0)] + resolve_targets(smollm2, ["L3:N7", "L5:R11"])
    got = vocab_signatures(smollm2, targets, top=10)
    assert set(got) == {"L29:D0", "L3:N7", "L5:R11"}
    # the direction through RMSNorm (x / rms(x) * weight) and the unembedding, written out by hand
    x = torch.from_numpy(v) / torch.from_numpy(v).norm()
    logits = w_u @ (x / x.pow(2).mean().add(model.config.rms_norm_eps).sqrt() * gamma)
    assert got["L29:D0"]["promoted"] == [tok.decode([int(i)]) for i in logits.topk(10).indices]
    assert got["L29:D0"]["suppressed"] == [tok.decode([int(i)]) for i in (-logits).topk(10).indices]
    assert all(len(x["promoted"]) == len(x["suppressed"]) == 10 for x in got.values())
    # a neuron writes along its column of the MLP's output projection
    down = get_module(model, f"{fam.layers}.3.{fam.neurons}").weight.detach().float()
    assert torch.allclose(residual_write(smollm2, targets[1]), down[:, 7])
    # a residual dimension is its basis vector; its promoted tokens are the largest entries of that column
    gamma5 = gamma[11]
    col = w_u[:, 11] * torch.sign(gamma5)
    want = [tok.decode([int(i)]) for i in col.topk(10).indices]
    assert got["L5:R11"]["promoted"] == want
