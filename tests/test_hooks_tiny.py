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


# ---------------------------------------------------------------------- the attention, MLP-input and norm hooks

NEW = ("ln1", "attn_q", "attn_k", "attn_v", "attn_scores", "attn_pattern", "attn_z", "ln2", "mlp_pre")


def _new_hooks(model, layer):
    from interp_lab.models.hooks import hook_name, kinds_of

    return [hook_name(k, layer) for k in kinds_of(model) if k in NEW]


def _tiny_tokenizer(path):
    """A word-level tokenizer over the tiny vocabulary, saved beside the model (TransformerLens wants one)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(97)}
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="t0")), unk_token="t0",
                            pad_token="t0").save_pretrained(path)
    return transformers.AutoTokenizer.from_pretrained(path)


def test_attention_mlp_and_norm_hooks_equal_transformerlens(tiny, tmp_path):
    """Every new hook of a middle layer, on every family, against TransformerLens 3.9's TransformerBridge
    (booted offline on a copy of the same weights): names, shapes (k/v with the key/value heads) and values."""
    pytest.importorskip("transformer_lens")
    from transformer_lens.model_bridge import TransformerBridge

    model, inputs = tiny
    names = _new_hooks(model, 1)
    ours = run(model, inputs, names)
    model.save_pretrained(tmp_path)
    copy = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    bridge = TransformerBridge.boot_transformers(str(tmp_path), hf_model=copy, tokenizer=_tiny_tokenizer(tmp_path))
    tl_names = {n.replace("hook_normalized", "hook_out") for n in names}  # ours: the norm's output (hooks.py)
    with torch.inference_mode():
        tl_logits, cache = bridge.run_with_cache(inputs["input_ids"], names_filter=lambda n: n in tl_names)
    close(ours.logits, tl_logits)
    for name in names:
        got, want = ours.acts[name], cache[name.replace("hook_normalized", "hook_out")]
        assert got.shape == want.shape, name
        if name.endswith("hook_attn_scores"):  # masked entries: the dtype's most negative number in both
            assert torch.equal(got < -1e30, want < -1e30)
            got, want = got[want > -1e30], want[want > -1e30]
        close(got, want)
    kv = getattr(model.config, "num_key_value_heads", None) or model.config.num_attention_heads
    assert ours.acts["blocks.1.attn.hook_k"].shape[2] == ours.acts["blocks.1.attn.hook_v"].shape[2] == kv


def test_attention_hooks_fit_together(tiny):
    """Independently of TransformerLens: softmax(scores) is the pattern, the pattern times the values (repeated
    per query head) is z, z through the output projection is what attention computes, and reading scores
    (an eager forward) leaves the logits and the model's attention implementation as they were."""
    model, inputs = tiny
    fam = family_of(model)
    before = model.config._attn_implementation
    names = _new_hooks(model, 1)
    res = run(model, inputs, names)
    assert model.config._attn_implementation == before
    close(res.logits, run(model, inputs).logits)
    a = {n.split(".", 2)[-1]: v for n, v in res.acts.items()}
    pattern, v, z = a["attn.hook_pattern"], a["attn.hook_v"], a["attn.hook_z"]
    close(a["attn.hook_attn_scores"].softmax(-1), pattern)
    close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))
    assert (pattern.triu(1) == 0).all()  # causal
    v = v.repeat_interleave(pattern.shape[1] // v.shape[2], 2)
    close(torch.einsum("bhqk,bkhd->bqhd", pattern, v), z)
    block = get_module(model, fam.layers)[1]
    seen = {}
    h = get_module(block, fam.attn_o).register_forward_hook(lambda m, a_, o: seen.setdefault("o", o.detach()))
    try:
        run(model, inputs, ["blocks.1.attn.hook_z"])
    finally:
        h.remove()
    with torch.inference_mode():
        close(get_module(block, fam.attn_o)(z.flatten(-2)), seen["o"])


def test_edits_of_q_v_pattern_and_mlp_pre(tiny):
    model, inputs = tiny
    T = inputs["input_ids"].shape[1]
    # zero queries of head 1: its scores are 0, its pattern uniform over the keys each position may see
    got = run(model, inputs, ["blocks.1.attn.hook_pattern"],
              edits=[Edit("blocks.1.attn.hook_q", "zero", heads=[1])]).acts["blocks.1.attn.hook_pattern"]
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    close(got[:, 1], uniform.expand(2, T, T))
    assert not torch.allclose(got[:, 0], uniform)
    # values zeroed: z is zero
    z = run(model, inputs, ["blocks.1.attn.hook_z"],
            edits=[Edit("blocks.1.attn.hook_v", "zero")]).acts["blocks.1.attn.hook_z"]
    assert (z == 0).all()
    # every query attending to the first token only: z is the first token's value, in every position
    one_hot = torch.zeros(T)
    one_hot[0] = 1.0
    res = run(model, inputs, ["blocks.1.attn.hook_z", "blocks.1.attn.hook_v"],
              edits=[Edit("blocks.1.attn.hook_pattern", "replace", one_hot)]).acts
    v0 = res["blocks.1.attn.hook_v"][:, :1].repeat_interleave(res["blocks.1.attn.hook_z"].shape[2] //
                                                               res["blocks.1.attn.hook_v"].shape[2], 2)
    close(res["blocks.1.attn.hook_z"], v0.expand_as(res["blocks.1.attn.hook_z"]))
    # the MLP's pre-activation zeroed: every family's activation is 0 at 0, so its neurons are
    post = run(model, inputs, ["blocks.1.mlp.hook_post"],
               edits=[Edit("blocks.1.mlp.hook_pre", "zero")]).acts["blocks.1.mlp.hook_post"]
    assert post.abs().max() < 1e-6


def test_zero_ablating_a_head_equals_zeroing_its_slice_by_hand(tiny):
    from interp_lab.interventions.heads import head_edit

    model, inputs = tiny
    fam = family_of(model)
    o = get_module(get_module(model, fam.layers)[1], fam.attn_o)
    d = run(model, inputs, ["blocks.1.attn.hook_z"]).acts["blocks.1.attn.hook_z"].shape[-1]
    hooked = run(model, inputs, edits=[head_edit(1, [2])]).logits

    def zero_slice(mod, args):
        x = args[0].clone()
        x[..., 2 * d: 3 * d] = 0
        return (x,)

    h = o.register_forward_pre_hook(zero_slice)
    try:
        with torch.inference_mode():
            manual = model(**inputs).logits
    finally:
        h.remove()
    close(hooked, manual)
    assert not torch.allclose(hooked, run(model, inputs).logits)
    with pytest.raises(Exception, match="out of range"):
        run(model, inputs, edits=[head_edit(1, [9])])
    with pytest.raises(Exception, match="have heads"):
        run(model, inputs, edits=[Edit("blocks.1.hook_resid_post", "zero", heads=[0])])


def test_flat_per_head_hooks_and_pattern_refused(tiny):
    model, inputs = tiny
    z4 = run(model, inputs, ["blocks.0.attn.hook_z"]).acts["blocks.0.attn.hook_z"]
    flat = run(model, inputs, ["blocks.0.attn.hook_z"], flat=True).acts["blocks.0.attn.hook_z"]
    close(flat, z4.flatten(-2))
    # a flat edit addresses n_heads * d_head channels; the same as the head edit it spells out
    d = z4.shape[-1]
    by_channels = run(model, inputs, edits=[Edit("blocks.0.attn.hook_z", "zero", channels=range(d, 2 * d))],
                      flat=True).logits
    close(by_channels, run(model, inputs, edits=[Edit("blocks.0.attn.hook_z", "zero", heads=[1])]).logits)
    with pytest.raises(Exception, match="not one vector per token"):
        run(model, inputs, ["blocks.0.attn.hook_pattern"], flat=True)


def test_new_hook_names_parse_and_unknown_ones_fail(tiny):
    model, _ = tiny
    fam = family_of(model)
    for name in _new_hooks(model, 2):
        assert parse(name, model).layer == 2
    assert parse("blocks.2.attn.hook_z", model).layout == "heads"
    assert parse("blocks.2.attn.hook_pattern", model).layout == "pattern"
    with pytest.raises(Exception, match="unknown hook") as e:
        parse("blocks.0.attn.hook_zz", model)
    assert "\n" not in str(e.value) and "attn.hook_z" in str(e.value)
    if fam.ln2 is None:
        with pytest.raises(Exception, match="one norm"):
            parse("blocks.0.ln2.hook_normalized", model)


@pytest.mark.parametrize("family", ["mistral", "gemma2"])
def test_pattern_with_sliding_window_and_left_padding(family):
    """Scores and pattern come from HF's own eager mask: a sliding window and left padding are in them."""
    torch.manual_seed(0)
    extra = {"head_dim": 8} if family == "gemma2" else {}
    cfg = CONFIGS[family]()
    cfg = type(cfg)(**{**COMMON, **extra, "sliding_window": 3})
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    ids = torch.randint(1, 97, (2, 8))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # row 1 left padded
    inputs = {"input_ids": ids, "attention_mask": mask}
    layer = 0  # gemma2: layer 0 is a sliding layer
    res = run(model, inputs, [f"blocks.{layer}.attn.hook_pattern"])
    real = mask.bool()  # what a padding position computes is nobody's business
    close(res.logits[real], run(model, inputs).logits[real])
    p = res.acts[f"blocks.{layer}.attn.hook_pattern"]
    q, k = torch.arange(8)[:, None], torch.arange(8)[None]
    assert (p[0][:, (k > q) | (q - k >= 3)] == 0).all() and (p[0][:, (k <= q) & (q - k < 3)] > 0).all()
    assert (p[1, :, 2:, :2] == 0).all()  # no real token attends to padding


def test_pattern_over_a_key_value_cache_is_the_last_row(tiny):
    from transformers import DynamicCache

    model, inputs = tiny
    full = run(model, inputs, ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_k"])
    cache = DynamicCache(config=model.config)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    run(model, {"input_ids": ids[:, :-1], "attention_mask": mask[:, :-1]}, logits=True, cache=cache)
    step = run(model, {"input_ids": ids[:, -1:], "attention_mask": mask}, ["blocks.1.attn.hook_pattern",
                                                                           "blocks.1.attn.hook_k"], cache=cache)
    close(step.acts["blocks.1.attn.hook_pattern"], full.acts["blocks.1.attn.hook_pattern"][:, :, -1:])
    close(step.acts["blocks.1.attn.hook_k"], full.acts["blocks.1.attn.hook_k"][:, -1:])
    close(step.logits[:, -1], full.logits[:, -1])


def test_a_hook_z_channel_writes_the_residual_stream_through_the_output_projection(tiny):
    """interventions.features.residual_writes for hook_z: adding one flat channel of z moves what attention
    adds to the residual stream by that channel's column of the output projection (Gemma 2/3 then normalize
    it, which is not linear, so there only the projection itself is checked)."""
    from types import SimpleNamespace

    from interp_lab.interventions.features import BasisSpace, residual_writes

    model, inputs = tiny
    fam = family_of(model)
    hook = "blocks.1.attn.hook_z"
    width = run(model, inputs, [hook], flat=True).acts[hook].shape[-1]
    space = BasisSpace(hook, 1, "Z", width)
    w = residual_writes(SimpleNamespace(model=model), space, [3, width - 1])
    assert w.shape == (2, model.config.hidden_size)
    read = fam.attn_o if fam.name in ("gemma2", "gemma3_text") else None
    for row, c in enumerate([3, width - 1]):
        one = torch.zeros(width)
        one[c] = 2.0
        edit = [Edit(hook, "add", one)]
        if read is None:
            base = run(model, inputs, ["blocks.1.hook_attn_out"]).acts["blocks.1.hook_attn_out"]
            moved = run(model, inputs, ["blocks.1.hook_attn_out"], edit, flat=True).acts["blocks.1.hook_attn_out"]
            close(moved - base, (2.0 * w[row]).expand_as(base))
        else:
            o = get_module(get_module(model, fam.layers)[1], read)
            with torch.inference_mode():
                close(o(one) - o(torch.zeros(width)), 2.0 * w[row])
