"""The attention, MLP-input and norm hooks on SmolLM2 (grouped-query attention, 9 query / 3 key-value heads)
and Gemma-3 (q/k norms, sandwich norms, 1 + w norms) against TransformerLens 3.9, head ablations through
``hook_z`` against TransformerLens's, and the new hooks through harvest and a cached prompt set."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformer_lens")

from interp_lab.errors import UsageError  # noqa: E402
from interp_lab.interventions.heads import head_edit, head_means, head_scores  # noqa: E402
from interp_lab.models.hooked import hook_widths, run  # noqa: E402
from interp_lab.models.hooks import family_of, get_module, hook_name, kinds_of  # noqa: E402

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
PROMPT = "The bridge is 240 metres long and"
NEW = ("ln1", "attn_q", "attn_k", "attn_v", "attn_scores", "attn_pattern", "attn_z", "ln2", "mlp_pre")


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def pair(request):
    """(our loaded model, TransformerLens's bridge over a copy of it): booting the bridge rewires the HF
    model it is given (wrapped modules, eager attention), so the session's model stays untouched."""
    from transformer_lens.model_bridge import TransformerBridge

    lm = request.getfixturevalue(request.param)
    bridge = TransformerBridge.boot_transformers(lm.info["upstream"], hf_model=copy.deepcopy(lm.model),
                                                 tokenizer=lm.tokenizer)
    return lm, bridge


def _ids(lm, text=PROMPT):
    return lm.tokenizer([text], return_tensors="pt")["input_ids"]


def test_hooks_equal_transformerlens(pair):
    lm, bridge = pair
    ids = _ids(lm)
    layers = [0, lm.n_layers // 2, lm.n_layers - 1]
    names = [hook_name(k, i) for i in layers for k in kinds_of(lm.model) if k in NEW]
    ours = run(lm.model, {"input_ids": ids}, names)
    want = {n.replace("hook_normalized", "hook_out") for n in names} | {n for n in names if "ln" in n}
    with torch.inference_mode():
        tl_logits, cache = bridge.run_with_cache(ids, names_filter=lambda n: n in want)
    tol = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.logits, tl_logits, **tol)
    cfg = lm.model.config
    H, KV = cfg.num_attention_heads, cfg.num_key_value_heads
    assert KV < H  # grouped-query attention on both: k and v keep the key/value heads
    gemma = family_of(lm.model).name.startswith("gemma")
    for name in names:
        got, tl = ours.acts[name], cache[name.replace("hook_normalized", "hook_out")]
        assert got.shape == tl.shape, name
        if name.endswith(("hook_k", "hook_v")):
            assert got.shape[2] == KV
        if name.endswith("hook_attn_scores"):
            assert torch.equal(got < -1e30, tl < -1e30)
            got, tl = got[tl > -1e30], tl[tl > -1e30]
        torch.testing.assert_close(got, tl, **tol, msg=name)
        if "ln" in name:  # TransformerLens's own hook_normalized is before the weight (hooks.py)
            layer = int(name.split(".")[1])
            fam = family_of(lm.model)
            norm = get_module(get_module(lm.model, fam.layers)[layer], fam.ln1 if ".ln1." in name else fam.ln2)
            w = norm.weight.detach().float() + (1.0 if gemma else 0.0)
            torch.testing.assert_close(ours.acts[name], cache[name] * w, **tol, msg=name)


def test_head_ablation_through_hook_z_matches_transformerlens(pair):
    """Zero- and mean-ablating one head through hook_z change the logits as the same edit in TransformerLens
    does, and by a clear margin."""
    from interp_lab.interventions.batches import PromptSet

    lm, bridge = pair
    ids = _ids(lm)
    layer, head = lm.n_layers // 2, 1
    clean = run(lm.model, {"input_ids": ids}).logits
    means = head_means(PromptSet(lm, ["Rain fell on the old stone wall", "In 1990 the town had", PROMPT], 3), layer)
    assert means.shape == (lm.model.config.num_attention_heads, 64 if lm.family == "llama" else 256)
    for kind in ("ablate", "mean_ablate"):
        ours = run(lm.model, {"input_ids": ids}, edits=[head_edit(layer, [head], kind, means)]).logits
        value = torch.zeros_like(means[head]) if kind == "ablate" else means[head]

        def set_head(z, hook, value=value):
            z = z.clone()
            z[:, :, head] = value
            return z

        with torch.inference_mode():
            theirs = bridge.run_with_hooks(ids, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", set_head)])
        assert (ours - clean).abs().max() > 0.05, kind
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-3, msg=kind)  # sdpa here, eager there


def test_head_scores_over_cached_prefixes_equal_whole_forwards(smollm2):
    """Each head of a layer ablated alone from the last prompt token on (a prompt set's cached prefixes, as
    interventions run) scores what a whole forward with the same edit at the last position scores."""
    from interp_lab.criteria.scorers import NextTokenMass
    from interp_lab.interventions.batches import PromptSet, scores

    lm = smollm2
    texts = ["The bridge is 240", "Rain fell on the old stone"]  # one batch, the first prompt left padded
    target = lm.tokenizer([" metres", " wall"], add_special_tokens=False)["input_ids"]
    scorer = NextTokenMass([t[0] for t in target])
    ps = PromptSet(lm, texts, 2)
    got = head_scores(ps, scorer, 3)
    assert got.shape == (9, 2)
    clean = scores(ps, scorer)
    assert np.abs(got - clean).max() > 1e-4
    for h in (0, 4):
        for i, t in enumerate(texts):
            ids = _ids(lm, t)
            logits = run(lm.model, {"input_ids": ids}, edits=[head_edit(3, [h], positions=[-1])]).logits
            want = torch.softmax(logits[0, -1].float(), -1)[scorer.target_ids].sum()
            assert abs(float(want) - got[h, i]) < 1e-4


def test_harvest_reads_the_new_hooks_per_token(smollm2, tmp_path):
    from interp_lab.harvest.run import harvest
    from interp_lab.store.reader import Store

    hooks = ["blocks.3.attn.hook_z", "blocks.3.attn.hook_k", "blocks.3.mlp.hook_pre", "blocks.3.ln2.hook_normalized"]
    assert hook_widths(smollm2, hooks) == {hooks[0]: 9 * 64, hooks[1]: 3 * 64, hooks[2]: 1536, hooks[3]: 576}
    harvest(smollm2, "lee", hooks, tmp_path / "s", max_tokens=40, context_length=20, batch_size=2)
    st = Store(tmp_path / "s")
    tok = st.tokens(["token_id", "position"]).to_pydict()
    n = tok["position"].index(0, 1)  # the first sequence's rows
    direct = run(smollm2.model, {"input_ids": torch.tensor([tok["token_id"][:n]])}, hooks, logits=False).acts
    for h in hooks:
        want = direct[h][0].flatten(1).numpy()  # q/k/v/z stored head-major, n_heads * d_head per token
        np.testing.assert_allclose(st.acts(h, np.arange(n)).astype(np.float32), want, rtol=2e-2, atol=2e-2)
    with pytest.raises(UsageError, match="not one vector per token") as e:
        harvest(smollm2, "lee", "blocks.3.attn.hook_pattern", tmp_path / "p", max_tokens=40)
    assert "\n" not in str(e.value) and not (tmp_path / "p").exists()
