"""Hook points on the two real models (SmolLM2-135M and Gemma-3-270M), fetched and cached like a user's."""

import pytest

torch = pytest.importorskip("torch")

from interp_lab.models.hooked import Edit, run  # noqa: E402
from interp_lab.models.hooks import all_hooks, family_of, get_module  # noqa: E402

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
TEXTS = ["The bridge is 240 metres long and", "Rain fell on the old stone wall"]


def batch(lm):
    return lm.tokenizer(TEXTS, return_tensors="pt", padding=True)


def test_registry_metadata(smollm2):
    assert smollm2.revision == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert (smollm2.family, smollm2.n_layers, smollm2.d_model) == ("llama", 30, 576)


def test_smollm2_every_hook_is_consistent_with_hidden_states(smollm2):
    model, inputs = smollm2.model, batch(smollm2)
    acts = run(model, inputs, all_hooks(model)).acts
    with torch.inference_mode():
        hs = model(**inputs, output_hidden_states=True).hidden_states
    tol = dict(rtol=1e-4, atol=1e-3)
    for i in range(30):
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_pre"], hs[i], **tol)
        if i < 29:
            torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_post"], hs[i + 1], **tol)
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_mid"],
                                   acts[f"blocks.{i}.hook_resid_pre"] + acts[f"blocks.{i}.hook_attn_out"], **tol)
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_post"],
                                   acts[f"blocks.{i}.hook_resid_mid"] + acts[f"blocks.{i}.hook_mlp_out"], **tol)
        assert acts[f"blocks.{i}.mlp.hook_post"].shape[-1] == model.config.intermediate_size
    torch.testing.assert_close(acts["ln_final.hook_normalized"], hs[30], **tol)


def test_smollm2_zeroing_mlp_out_equals_doing_it_by_hand(smollm2):
    model, inputs = smollm2.model, batch(smollm2)
    hooked = run(model, inputs, edits=[Edit("blocks.12.hook_mlp_out", "zero")]).logits
    mlp = get_module(model, family_of(model).layers)[12].mlp
    original = mlp.forward
    mlp.forward = lambda x: torch.zeros_like(original(x))
    try:
        with torch.inference_mode():
            manual = model(**inputs).logits
    finally:
        del mlp.forward
    torch.testing.assert_close(hooked, manual)
    assert (hooked - run(model, inputs).logits).abs().max() > 1e-3


def test_smollm2_early_stop_skips_later_layers(smollm2):
    model, inputs = smollm2.model, batch(smollm2)
    calls = []
    h = get_module(model, "model.layers")[20].register_forward_hook(lambda *a: calls.append(1))
    try:
        res = run(model, inputs, ["blocks.5.hook_resid_post"], logits=False)
    finally:
        h.remove()
    assert res.stopped_early and not calls and res.acts["blocks.5.hook_resid_post"].shape[:2] == \
        inputs["input_ids"].shape


def test_gemma3_resid_post_of_every_layer(gemma3):
    model, inputs = gemma3.model, batch(gemma3)
    assert gemma3.n_layers == 18 and gemma3.d_model == 640
    acts = run(model, inputs, [f"blocks.{i}.hook_resid_post" for i in range(18)] + ["blocks.0.hook_resid_pre",
                                                                                    "ln_final.hook_normalized"]).acts
    with torch.inference_mode():
        hs = model(**inputs, output_hidden_states=True).hidden_states
    tol = dict(rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(acts["blocks.0.hook_resid_pre"], hs[0], **tol)
    for i in range(17):
        torch.testing.assert_close(acts[f"blocks.{i}.hook_resid_post"], hs[i + 1], **tol)
    torch.testing.assert_close(acts["ln_final.hook_normalized"], hs[18], **tol)


def _reference_llama(model, ids):
    """An independent plain-torch forward of a Llama block stack, from the weights alone."""
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    H, KV = cfg.num_attention_heads, cfg.num_key_value_heads
    D = cfg.hidden_size // H
    T = ids.shape[1]
    sd = {k: v.float() for k, v in model.state_dict().items()}

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w

    inv = 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
    ang = torch.arange(T).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rot(x):
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    out = {}
    x = sd["model.embed_tokens.weight"][ids[0]]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        out[f"blocks.{i}.hook_resid_pre"] = x
        h = rms(x, sd[p + "input_layernorm.weight"])
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(T, H, D)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(T, KV, D)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(T, KV, D)
        out.update({f"blocks.{i}.ln1.hook_normalized": h, f"blocks.{i}.attn.hook_q": q, f"blocks.{i}.attn.hook_k": k,
                    f"blocks.{i}.attn.hook_v": v})
        q, k, v = rot(q.transpose(0, 1)), rot(k.transpose(0, 1)), v.transpose(0, 1)
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        scores = (q @ k.transpose(1, 2) / D**0.5).masked_fill(~causal, torch.finfo(torch.float32).min)
        pattern = torch.softmax(scores, -1)
        z = (pattern @ v).transpose(0, 1)
        attn_out = z.reshape(T, H * D) @ sd[p + "self_attn.o_proj.weight"].T
        mid = x + attn_out
        h2 = rms(mid, sd[p + "post_attention_layernorm.weight"])
        pre = h2 @ sd[p + "mlp.gate_proj.weight"].T
        post = torch.nn.functional.silu(pre) * (h2 @ sd[p + "mlp.up_proj.weight"].T)
        mlp_out = post @ sd[p + "mlp.down_proj.weight"].T
        x = mid + mlp_out
        out.update({f"blocks.{i}.attn.hook_attn_scores": scores, f"blocks.{i}.attn.hook_pattern": pattern,
                    f"blocks.{i}.attn.hook_z": z, f"blocks.{i}.hook_attn_out": attn_out,
                    f"blocks.{i}.hook_resid_mid": mid, f"blocks.{i}.ln2.hook_normalized": h2,
                    f"blocks.{i}.mlp.hook_pre": pre, f"blocks.{i}.mlp.hook_post": post,
                    f"blocks.{i}.hook_mlp_out": mlp_out, f"blocks.{i}.hook_resid_post": x})
    return out


def test_smollm2_hooks_equal_an_independent_implementation(smollm2):
    model = smollm2.model
    ids = smollm2.tokenizer(TEXTS[:1], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ref = _reference_llama(model, ids)
    names = [n for n in all_hooks(model) if n.startswith("blocks.")]
    acts = run(model, {"input_ids": ids}, names, logits=False).acts
    for name in names:
        torch.testing.assert_close(acts[name][0], ref[name], rtol=1e-3, atol=2e-3, msg=name)
