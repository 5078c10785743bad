"""Engines (models/engines.py): interp-lab's hooks, TransformerLens and nnsight read the same activations on
SmolLM2, harvest the same store and export the same records; the activation-path grammar (never evaluated)."""

from __future__ import annotations

import json
import re
import sys

import msgspec
import numpy as np
import pytest

from interp_lab.errors import UsageError
from interp_lab.models.activation_path import parse_activation_path, resolve

torch = pytest.importorskip("torch")

realmodel = [pytest.mark.slow, pytest.mark.realmodel]
TEXTS = ["The bridge is 120 metres long and the road beyond it runs for 40 km through the hills.",
         "Hi there", "Rain fell on the old town all night, and by morning the river had risen."]


# ------------------------------------------------------------------------------------------ activation paths


@pytest.mark.parametrize("text, steps, where, index", [
    ("model.layers.6.mlp.output[0]", ("model", "layers", 6, "mlp"), "output", 0),
    ("transformer.h.6.output[0]", ("transformer", "h", 6), "output", 0),
    ("transformer.h[6].output[0]", ("transformer", "h", 6), "output", 0),
    ("  model.layers[11].output  ", ("model", "layers", 11), "output", None),
    ("model.layers.3.mlp.down_proj.input", ("model", "layers", 3, "mlp", "down_proj"), "input", None),
    ("model.layers.3.self_attn.input[1]", ("model", "layers", 3, "self_attn"), "input", 1),
    ("bert.encoder.layer.0.output.output", ("bert", "encoder", "layer", 0, "output"), "output", None),
])
def test_activation_paths_parse(text, steps, where, index):
    p = parse_activation_path(text)
    assert (p.steps, p.where, p.index) == (steps, where, index)


@pytest.mark.parametrize("text, says", [
    ("__import__('os').system('touch pwned')", "'(' at column 11 is not part of a module path"),
    ("model.layers[0].output; import os", "';' at column 23"),
    ("model.layers[-1].output", "'-' at column 14 is not part of a module path"),
    ("model.layers[1:3].output", "':' at column 15 is not part of a module path"),
    ("model.layers[1.output", "'[' at column 13 must hold a non-negative integer and ']', not '.'"),
    ("model.layers[a].output", "must hold a non-negative integer and ']', not 'a'"),
    ("model.layers.6", "must end in .output or .input"),
    ("model.layers.6.output.0", "must end in .output or .input"),
    ("model..layers.output", "'.' at column 6 is out of place"),
    ("model.layers.6.output[0][1]", "must end in .output or .input"),
    (".output", "'.' at the start is out of place"),
    ("output[0]", "names no module before .output"),
    ("6.output", "starts with an index (6)"),
    ("", "empty"),
    ("model layers", "' ' at column 6"),
])
def test_bad_activation_paths_are_one_line_naming_the_part(text, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as err:
        parse_activation_path(text)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_paths_reach_named_submodules_only():
    """Resolution walks ``_modules``: no attribute, method or dunder of a module is reachable."""
    nn = torch.nn
    root = nn.Module()
    root.transformer = nn.Module()
    root.transformer.h = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    mod, p = resolve(root, parse_activation_path("transformer.h[2].output[0]"))
    assert mod is root.transformer.h[2] and p.steps == ("transformer", "h", 2)
    mod, p = resolve(root, parse_activation_path("model.transformer.h.1.output"))  # nnsight's own name in front
    assert mod is root.transformer.h[1] and p.steps == ("transformer", "h", 1)
    for text, says in [("transformer.h[3].output", "transformer.h has no [3] (it holds 3: 0..2)"),
                       ("transformer.__class__.output", "transformer has no submodule '__class__' (it has: h)"),
                       ("transformer.h.0.weight.output", "transformer.h.0 has no submodule 'weight'"),
                       ("transformer.h.0.forward.output", "transformer.h.0 has no submodule 'forward'"),
                       ("model.wte.output", "the model has no submodule 'model' (it has: transformer)")]:
        with pytest.raises(UsageError, match="^--activation-path ") as err:
            resolve(root, parse_activation_path(text))
        assert says in str(err.value), str(err.value)


@pytest.mark.parametrize("engine, extra", [("transformerlens", "transformer_lens"), ("nnsight", "nnsight")])
def test_an_engine_not_installed_is_one_line_naming_the_extra(engine, extra, cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, extra, None)  # what the import system sees when the package is absent
    code, out, err = cli("harvest", "--dataset", "lee", "--out", tmp_path / "store", "--engine", engine)
    assert code == 2 and err.strip() == f"interp-lab: error: --engine {engine} needs " \
        f"{'TransformerLens' if engine == 'transformerlens' else 'nnsight'}: pip install 'interp-lab[{engine}]'"
    assert not (tmp_path / "store").exists()
    command = ("export-transformerlens-records", "--layers", "3") if engine == "transformerlens" else \
        ("export-nnsight-records", "--activation-path", "model.layers.3.output")
    code, _, err = cli(*command, "--dataset", "lee", "--out", tmp_path / "r.jsonl")
    assert code == 2 and f"pip install 'interp-lab[{engine}]'" in err and not (tmp_path / "r.jsonl").exists()


# ------------------------------------------------------------------------------------------ on SmolLM2


@pytest.fixture(scope="module")
def lm(smollm2):
    return smollm2


@pytest.fixture(scope="module")
def engines(lm):
    pytest.importorskip("transformer_lens")
    pytest.importorskip("nnsight")
    from interp_lab.models.engines import open_engine

    return {name: open_engine(name, lm) for name in ("hooks", "transformerlens", "nnsight")}


@pytest.fixture(scope="module")
def batch(lm):
    from interp_lab.harvest.run import pad_right

    ids, mask = pad_right(lm.tokenizer(TEXTS)["input_ids"], lm.tokenizer.pad_token_id)
    return ids, mask


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    p = tmp_path_factory.mktemp("engines") / "prompts.jsonl"
    rows = [{"prompt_id": f"p{i}", "text": t, "criterion_score": float(i % 2)} for i, t in enumerate(TEXTS * 3)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _close(got, ref, keep, name, engine, rel=1e-5):
    """Equal within float tolerance on the real tokens: |difference| <= rel x the hook's largest value."""
    a, b = got[keep].float(), ref[keep].float()
    assert a.shape == b.shape, (engine, name)
    err = (a - b).abs().max().item() / b.abs().max().item()
    assert err <= rel, f"{engine} {name}: relative difference {err:.1e}"


@pytest.mark.parametrize("engine", ["transformerlens", "nnsight"])
@pytest.mark.slow
@pytest.mark.realmodel
def test_resid_post_agrees_with_the_hooks_engine_at_every_layer(engines, lm, batch, engine):
    ids, mask = batch
    names = [f"blocks.{i}.hook_resid_post" for i in range(lm.n_layers)]
    ref = engines["hooks"].read(ids, mask, names)
    got = engines[engine].read(ids, mask, names)
    assert sorted(got) == sorted(names)
    for n in names:
        _close(got[n], ref[n], mask.bool(), n, engine)


@pytest.mark.parametrize("engine", ["transformerlens", "nnsight"])
@pytest.mark.slow
@pytest.mark.realmodel
def test_every_hook_kind_agrees(engines, lm, batch, engine):
    """Each name maps to the same tensor (TransformerLens's hook_normalized is before the norm's weight, so
    ours is its hook_out; nnsight's sites come from the family table; resid_mid is resid_pre + attn_out)."""
    ids, mask = batch
    kinds = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out", "hook_resid_post")
    names = ["hook_embed", *(f"blocks.{i}.{k}" for i in (0, 17) for k in kinds), "ln_final.hook_normalized"]
    ref = engines["hooks"].read(ids, mask, names)
    got = engines[engine].read(ids, mask, names, store_dtype=torch.float32)
    for n in names:
        _close(got[n], ref[n], mask.bool(), n, engine)


@pytest.mark.slow
@pytest.mark.realmodel
def test_engines_leave_the_callers_model_as_it_was(engines, lm, batch):
    """The bridge replaces modules and nnsight patches forwards: both on a twin sharing the weights."""
    ids, mask = batch
    assert [type(b).__name__ for b in lm.model.model.layers] == ["LlamaDecoderLayer"] * lm.n_layers
    assert not [n for n, m in lm.model.named_modules() if "forward" in vars(m)]
    bridged = engines["transformerlens"].bridge.original_model
    assert bridged is not lm.model and type(bridged.model.layers[0]).__name__ != "LlamaDecoderLayer"
    assert bridged.model.layers[0].mlp.up_proj.weight is lm.model.model.layers[0].mlp.up_proj.weight
    twice = engines["hooks"].read(ids, mask, ["blocks.9.hook_resid_post"])["blocks.9.hook_resid_post"]
    from interp_lab.models.hooked import run

    direct = run(lm.model, {"input_ids": ids, "attention_mask": mask}, ["blocks.9.hook_resid_post"], logits=False)
    assert torch.equal(twice, direct.acts["blocks.9.hook_resid_post"])


def _records(path):
    return [json.loads(line) for line in open(path)]


def _same_records(a, b, rel=1e-5):
    assert [r["prompt_id"] for r in a] == [r["prompt_id"] for r in b] and a
    for ra, rb in zip(a, b):
        fa = {f["feature_id"]: f["activation"] for f in ra["features"]}
        fb = {f["feature_id"]: f["activation"] for f in rb["features"]}
        assert list(fa) == list(fb) and fa
        scale = max(abs(v) for v in fa.values())
        assert max(abs(fa[k] - fb[k]) for k in fa) <= rel * scale + 1e-6
        assert (ra["text"], ra.get("criterion_score")) == (rb["text"], rb.get("criterion_score"))


@pytest.mark.slow
@pytest.mark.realmodel
def test_exported_records_equal_export_hf_records(engines, lm, prompts, tmp_path, cli):
    from interp_lab.api import export_hf_records, export_nnsight_records, export_transformerlens_records

    for kind, layers, path in [("residual", "4,6", "model.layers[6].output[0]"),
                               ("neurons", "6", "model.model.layers.6.mlp.down_proj.input")]:
        hf = tmp_path / f"hf-{kind}.jsonl"
        export_hf_records(model=lm, dataset=str(prompts), out=hf, layers=layers, kind=kind, batch_size=4)
        tl = tmp_path / f"tl-{kind}.jsonl"
        res = export_transformerlens_records(model=lm, dataset=str(prompts), out=tl, layers=layers, kind=kind,
                                             batch_size=4)
        assert res.rows == 9 and res.paths == {"records": tl}
        _same_records(_records(hf), _records(tl))
        assert {r["metadata"]["source"] for r in _records(tl)} == {"transformerlens"}
        nn = tmp_path / f"nn-{kind}.jsonl"
        res = export_nnsight_records(model=lm, dataset=str(prompts), out=nn, activation_path=path, batch_size=4)
        assert res.hooks == [f"blocks.6.{'hook_resid_post' if kind == 'residual' else 'mlp.hook_post'}"]
        only6 = [{**r, "features": [f for f in r["features"] if f["layer"] == 6]} for r in _records(hf)]
        _same_records(only6, _records(nn))
        assert {r["metadata"]["activation_path"] for r in _records(nn)} == {path}
    # a path records have no feature ids for, or that does not resolve: one line, nothing written
    for path, says in [("model.layers.6.self_attn.output[0]", "activation records have feature ids for a block's"),
                       ("model.layers.30.output[0]", "model.layers has no [30] (it holds 30: 0..29)"),
                       ("model.layers.6.output[2]", "the module returns one tensor")]:
        with pytest.raises(UsageError, match=f"^--activation-path {re.escape(path)}: .*{re.escape(says)}"):
            export_nnsight_records(model=lm, dataset=str(prompts), out=tmp_path / "bad.jsonl", activation_path=path)
        assert not (tmp_path / "bad.jsonl").exists()
    code, _, err = cli("export-nnsight-records", "--dataset", prompts, "--out", tmp_path / "bad.jsonl",
                       "--activation-path", "__import__('os')")
    assert code == 2 and "'(' at column 11" in err and not (tmp_path / "bad.jsonl").exists()
    # TransformerLens's short names (the 0.2 README's gpt2-small) stand for their Hugging Face id there only
    from interp_lab.models.engines import model_name

    assert model_name("transformerlens", "gpt2-small") == "gpt2"
    assert model_name("hooks", "gpt2-small") == "gpt2-small"
    assert model_name("transformerlens", "smollm2-135m") == "smollm2-135m"


@pytest.mark.slow
@pytest.mark.realmodel
def test_a_transformerlens_harvest_matches_the_hooks_harvest(engines, lm, prompts, tmp_path):
    from safetensors.numpy import load_file

    from interp_lab.harvest.run import harvest
    from interp_lab.store.format import StoreManifest

    hooks = "blocks.*.hook_resid_post,blocks.5.mlp.hook_post,ln_final.hook_normalized"
    kw = dict(context_length=16, batch_size=4, dtype="float32", shard_tokens=48)
    a = harvest(lm, str(prompts), hooks, tmp_path / "hooks", **kw)
    b = harvest(lm, str(prompts), hooks, tmp_path / "tl", engine="transformerlens", **kw)
    ma, mb = a.manifest, b.manifest
    assert (ma.engine, mb.engine) == ("hooks", "transformerlens") and len(ma.shards) == len(mb.shards) > 1
    same = {k for k in StoreManifest.__struct_fields__ if k not in ("engine", "settings_key", "shards")}
    assert {k: getattr(ma, k) for k in same} == {k: getattr(mb, k) for k in same}
    assert (tmp_path / "hooks/tokens.parquet").read_bytes() == (tmp_path / "tl/tokens.parquet").read_bytes()
    for sa, sb in zip(ma.shards, mb.shards):
        assert sa.sha256.keys() == sb.sha256.keys() and (sa.rows, sa.batches) == (sb.rows, sb.batches)
        for rel in (k for k in sa.sha256 if k.endswith(".safetensors")):
            x, y = (load_file(tmp_path / d / rel)["acts"] for d in ("hooks", "tl"))
            assert x.shape == y.shape and np.abs(x - y).max() <= 1e-5 * np.abs(x).max(), rel
    # a store is resumed only by the engine that began it
    with pytest.raises(UsageError, match="engine: 'transformerlens' vs 'hooks'"):
        harvest(lm, str(prompts), hooks, tmp_path / "tl", **kw)
    # a store written before engines existed (no engine field) is a hooks store, resumed as before
    man = json.loads((tmp_path / "hooks/manifest.json").read_text())
    del man["engine"]
    (tmp_path / "hooks/manifest.json").write_text(json.dumps(man))
    old = msgspec.json.decode((tmp_path / "hooks/manifest.json").read_bytes(), type=StoreManifest)
    assert old.engine == "hooks"
    again = harvest(lm, str(prompts), hooks, tmp_path / "hooks", **kw)
    assert again.batches_run == 0 and again.rows == a.rows
