"""Hook points on tiny randomly initialised models of every supported family (real transformers code)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from interp_lab.models.hooked import Edit, run  # noqa: E402
from interp_lab.models.hooks import all_hooks, family_of, get_module, parse  # noqa: E402

COMMON = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64)
CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(**COMMON),
    "mistral": lambda: transformers.MistralConfig(**COMMON),
    "qwen2": lambda: transformers.Qwen2Config(**COMMON),
    "qwen3": lambda: transformers.Qwen3Config(**COMMON, head_dim=8),
    "gemma": lambda: transformers.GemmaConfig(**COMMON, head_dim=8),
    "gemma2": lambda: transformers.Gemma2Config(**COMMON, head_dim=8),
    "gemma3_text": lambda: transformers.Gemma3TextConfig(**COMMON, head_dim=8),
    "phi3": lambda: transformers.Phi3Config(**COMMON, pad_token_id=0),
    "phi": lambda: transformers.PhiConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                          num_attention_heads=4, max_position_embeddings=64),
    "gpt2": lambda: transformers.GPT2Config(vocab_size=97, n_embd=32, n_layer=3, n_head=4, n_positions=64,
                                            bos_token_id=0, eos_token_id=0),
    "gpt_neox": lambda: transformers.GPTNeoXConfig(vocab_size=97, hidden_size=32, intermediate_size=64,
                                                   num_hidden_layers=3, num_attention_heads=4,
                                                   max_position_embeddings=64),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def tiny(request):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[request.param]()).eval()
    ids = torch.randint(1, 97, (2, 7))
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_residual_stream_matches_output_hidden_states(tiny):
    model, inputs = tiny
    names = all_hooks(model)
    res = run(model, inputs, names)
    with torch.inference_mode():
        hs = model(**inputs, output_hidden_states=True).hidden_states
    L = len(get_module(model, family_of(model).layers))
    close(res.acts["blocks.0.hook_resid_pre"], hs[0])
    for i in range(L - 1):
        close(res.acts[f"blocks.{i}.hook_resid_post"], hs[i + 1])
        close(res.acts[f"blocks.{i + 1}.hook_resid_pre"], hs[i + 1])
    close(res.acts["ln_final.hook_normalized"], hs[L])


def test_sublayers_add_up_to_the_residual_stream(tiny):
    model, inputs = tiny
    acts = run(model, inputs, all_hooks(model)).acts
    fam = family_of(model)
    for i in range(len(get_module(model, fam.layers))):
        pre, attn, mlp = (acts[f"blocks.{i}.hook_{k}"] for k in ("resid_pre", "attn_out", "mlp_out"))
        if fam.parallel:
            close(acts[f"blocks.{i}.hook_resid_post"], pre + attn + mlp)
        else:
            close(acts[f"blocks.{i}.hook_resid_mid"], pre + attn)
            close(acts[f"blocks.{i}.hook_resid_post"], acts[f"blocks.{i}.hook_resid_mid"] + mlp)


def test_neurons_are_the_down_projection_input(tiny):
    model, inputs = tiny
    fam = family_of(model)
    block = get_module(model, fam.layers)[1]
    seen = {}
    h = get_module(block, fam.neurons).register_forward_hook(lambda m, a, o: seen.setdefault("out", o.detach()))
    try:
        acts = run(model, inputs, ["blocks.1.mlp.hook_post"]).acts
    finally:
        h.remove()
    with torch.inference_mode():
        close(get_module(block, fam.neurons)(acts["blocks.1.mlp.hook_post"]), seen["out"])
    down = get_module(block, fam.neurons)
    width = down.in_features if hasattr(down, "in_features") else down.weight.shape[0]  # Linear / GPT-2 Conv1D
    assert acts["blocks.1.mlp.hook_post"].shape[-1] == width


def test_zeroing_mlp_out_equals_zeroing_the_module_by_hand(tiny):
    model, inputs = tiny
    fam = family_of(model)
    hooked = run(model, inputs, edits=[Edit("blocks.1.hook_mlp_out", "zero")]).logits
    module = get_module(get_module(model, fam.layers)[1], fam.mlp_out)
    original = module.forward

    def zeros(*args, **kwargs):
        out = original(*args, **kwargs)
        return torch.zeros_like(out[0] if isinstance(out, tuple) else out)

    module.forward = zeros
    try:
        with torch.inference_mode():
            manual = model(**inputs).logits
    finally:
        del module.forward
    close(hooked, manual)
    assert not torch.allclose(hooked, run(model, inputs).logits)


def test_positions_early_stop_and_edits_at_positions(tiny):
    model, inputs = tiny
    full = run(model, inputs, ["blocks.1.hook_resid_post"], logits=False)
    assert full.stopped_early and full.logits is None
    last = run(model, inputs, ["blocks.1.hook_resid_post"], positions=[-1], logits=False).acts
    close(last["blocks.1.hook_resid_post"], full.acts["blocks.1.hook_resid_post"][:, -1:])
    rows = run(model, inputs, ["blocks.1.hook_resid_post"], positions=torch.tensor([2, 5]), logits=False).acts
    close(rows["blocks.1.hook_resid_post"][1], full.acts["blocks.1.hook_resid_post"][1, 5])
    # a steering vector added at position 4 of layer 0 leaves earlier positions alone (causal masking)
    d = full.acts["blocks.1.hook_resid_post"].shape[-1]
    base = run(model, inputs).logits
    steered = run(model, inputs, edits=[Edit("blocks.0.hook_resid_post", "add", torch.ones(d) * 3, positions=[4])]).logits
    close(steered[:, :4], base[:, :4])
    assert not torch.allclose(steered[:, 4:], base[:, 4:])


def test_resid_mid_edits_change_what_attention_adds(tiny):
    model, inputs = tiny
    if family_of(model).parallel:
        with pytest.raises(Exception, match="parallel"):
            parse("blocks.0.hook_resid_mid", model)
        return
    acts = run(model, inputs, ["blocks.0.hook_resid_mid", "blocks.0.hook_resid_pre"]).acts
    target = acts["blocks.0.hook_resid_pre"] * 0.5
    after = run(model, inputs, ["blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"],
                edits=[Edit("blocks.0.hook_resid_mid", "replace", target)]).acts
    close(after["blocks.0.hook_resid_mid"], target)


def test_hook_names_are_checked(tiny):
    model, _ = tiny
    with pytest.raises(Exception, match="unknown hook"):
        parse("blocks.0.hook_resid", model)
    with pytest.raises(Exception, match="has 3 layers"):
        parse("blocks.3.hook_resid_post", model)


def test_replace_and_clamp_on_chosen_channels(tiny):
    model, inputs = tiny
    name = "blocks.1.mlp.hook_post"
    base = run(model, inputs, [name]).acts[name]
    got = run(model, inputs, [name], edits=[Edit(name, "replace", 5.0, positions=[0, 2], channels=[3, 7])]).acts[name]
    assert (got[:, [0, 2]][..., [3, 7]] == 5.0).all()
    close(got[:, 1], base[:, 1])
    close(got[..., 4], base[..., 4])
    clamped = run(model, inputs, [name], edits=[Edit(name, "clamp", min=-0.01, max=0.01)]).acts[name]
    assert clamped.abs().max() <= 0.01 + 1e-7
    with pytest.raises(Exception, match="needs a value"):
        Edit(name, "add")


def test_logit_lens_uses_each_familys_own_final_norm(tiny):
    from interp_lab.models.lens import decode

    model, inputs = tiny
    last = f"blocks.{len(get_module(model, family_of(model).layers)) - 1}.hook_resid_post"
    res = run(model, inputs, [last])
    with torch.inference_mode():
        close(decode(model, res.acts[last]), res.logits)
