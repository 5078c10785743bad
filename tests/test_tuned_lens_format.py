"""Tuned lenses in the ``tuned-lens`` package's on-disk format (config.json + params.pt): written by train-lens,
read by ``lens --tuned DIR``, the same KL table as the lens in memory; a pickle that is not tensors is refused."""

import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from interp_lab.errors import InputError, UsageError  # noqa: E402
from interp_lab.models.lens import TunedLens  # noqa: E402

# tuned-lens's TunedLensConfig fields (tuned_lens/nn/lenses.py), in its order
CONFIG_KEYS = ["base_model_name_or_path", "d_model", "num_hidden_layers", "bias", "base_model_revision",
               "unembed_hash", "lens_type"]


def _random_lens(n=4, d=8, seed=0) -> TunedLens:
    gen = torch.Generator().manual_seed(seed)
    lens = TunedLens(n, d, "toy", "rev1", "abc")
    with torch.no_grad():
        for t in [lens.input_translator, *lens.translators[:-1]]:
            t.weight.copy_(torch.randn(d, d, generator=gen))
            t.bias.copy_(torch.randn(d, generator=gen))
    return lens


def _tuned_lens_only(src: Path, dst: Path) -> Path:
    """A directory holding only what the tuned-lens package writes."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "params.pt"):
        shutil.copy(src / name, dst / name)
    return dst


def test_written_as_tuned_lens_writes_it(tmp_path):
    lens = _random_lens()
    lens.save(tmp_path / "lens")
    cfg = json.loads((tmp_path / "lens" / "config.json").read_text())
    assert list(cfg) == CONFIG_KEYS
    assert cfg == {"base_model_name_or_path": "toy", "d_model": 8, "num_hidden_layers": 4, "bias": True,
                   "base_model_revision": "rev1", "unembed_hash": "abc", "lens_type": "linear_tuned_lens"}
    state = torch.load(tmp_path / "lens" / "params.pt", weights_only=True)
    assert list(state) == [f"{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    # tuned-lens's translator i reads hidden_states[i]: 0 the embeddings, i >= 1 layer i-1's resid_post
    assert torch.equal(state["0.weight"], lens.input_translator.weight)
    for i in range(1, 4):
        assert torch.equal(state[f"{i}.weight"], lens.translators[i - 1].weight)
        assert torch.equal(state[f"{i}.bias"], lens.translators[i - 1].bias)
    back = TunedLens.load(_tuned_lens_only(tmp_path / "lens", tmp_path / "tl"))
    assert back.source_format == "tuned-lens" and (back.model_name, back.revision) == ("toy", "rev1")
    h = torch.randn(5, 8)
    for layer in range(4):
        assert torch.equal(back(h, layer), lens(h, layer))
    assert torch.equal(back.input_translator.weight, lens.input_translator.weight)


def test_a_translator_at_the_last_layer_has_no_place_in_the_format(tmp_path):
    lens = _random_lens()
    with torch.no_grad():
        lens.translators[-1].bias.fill_(1.0)
    with pytest.raises(UsageError, match="translator at the last layer"):
        lens.save(tmp_path / "lens")
    assert not (tmp_path / "lens").exists()  # nothing written


def test_a_lens_without_biases_and_an_older_interp_lab_lens(tmp_path):
    from safetensors.torch import load_file, save_file

    d = tmp_path / "nobias"
    _random_lens().save(d)
    state = torch.load(d / "params.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k.endswith("weight")}, d / "params.pt")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "bias": False}))
    lens = TunedLens.from_tuned_lens(d)
    assert torch.equal(lens.translators[0].weight, state["1.weight"]) and not lens.translators[0].bias.any()
    # a lens saved before input_translator existed still loads
    (d / "lens.safetensors").unlink()
    old = tmp_path / "old"
    _random_lens().save(old)
    tensors = {k: v for k, v in load_file(str(old / "lens.safetensors")).items() if not k.startswith("input")}
    save_file(tensors, str(old / "lens.safetensors"))
    assert not TunedLens.load(old).input_translator.weight.any()


@pytest.mark.parametrize("edit, message", [
    (lambda cfg, state: cfg.update(lens_type="lora_tuned_lens"), "config.json: field lens_type: lens_type"),
    (lambda cfg, state: cfg.pop("num_hidden_layers"), "config.json: field num_hidden_layers: expected a positive"),
    (lambda cfg, state: cfg.update(num_hidden_layers=5), "params.pt: field 4.weight: missing"),
    (lambda cfg, state: cfg.update(d_model=6), "params.pt: field 0.weight: expected a float tensor of shape [6, 6]"),
    (lambda cfg, state: state.update({"9.weight": torch.zeros(8, 8)}), "params.pt: field 9.weight: unexpected"),
    (lambda cfg, state: state.update({"2.bias": "zero"}), "params.pt: field 2.bias: not a tensor (str)"),
])
def test_a_checkpoint_that_does_not_fit_is_one_line(tmp_path, edit, message):
    d = tmp_path / "lens"
    _random_lens().save(d)
    (d / "lens.json").unlink()
    cfg = json.loads((d / "config.json").read_text())
    state = torch.load(d / "params.pt", weights_only=True)
    edit(cfg, state)
    (d / "config.json").write_text(json.dumps(cfg))
    torch.save(state, d / "params.pt")
    with pytest.raises(InputError) as err:
        TunedLens.load(d)
    assert message in str(err.value) and "\n" not in str(err.value)


class _Planted:
    """Unpickling this would create the file ``path``: the proof that nothing was unpickled is its absence."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_params_pt_that_is_not_only_tensors_is_refused(tmp_path, cli):
    d = tmp_path / "lens"
    _random_lens().save(d)
    (d / "lens.json").unlink()
    marker = tmp_path / "unpickled"
    state = torch.load(d / "params.pt", weights_only=True)
    torch.save({**state, "0.weight": _Planted(marker)}, d / "params.pt")
    code, out, err = cli("lens", "--prompt", "The bridge is 240", "--tokens", " metres", "--tuned", d)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"{d / 'params.pt'}: refused: its pickle calls {os.mkdir.__module__}.mkdir" in err, err
    assert "weights_only=True" in err, err
    assert not marker.exists()
    (d / "params.pt").write_bytes(b"not a pickle at all")
    code, _, err = cli("lens", "--prompt", "x", "--tokens", " metres", "--tuned", d)
    assert code == 2 and "refused: not a torch checkpoint of tensors" in err, err
    code, _, err = cli("lens", "--prompt", "x", "--tokens", " metres", "--tuned", tmp_path)
    assert code == 2 and "not a tuned lens (no lens.json, nor tuned-lens's config.json + params.pt)" in err, err


@pytest.mark.realmodel
@pytest.mark.slow
def test_train_lens_round_trip_through_the_tuned_lens_format(smollm2, tmp_path, cli):
    """A lens trained by train-lens, read back from config.json + params.pt alone by ``lens --tuned``, gives the
    KL table train-lens measured with the lens in memory, to the last bit."""
    from datasets import Dataset

    from interp_lab.io.datasets import iter_documents

    docs = [d.text[:200] for d, _ in zip(iter_documents("lee"), range(9))]  # about 45 tokens each
    Dataset.from_dict({"body": docs, "n": list(range(len(docs)))}).to_parquet(str(tmp_path / "docs.parquet"))
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs[6:]))
    code, out, err = cli("train-lens", "--dataset", f"hf:{tmp_path / 'docs.parquet'}", "--text-column", "body",
                         "--layers", "3,12", "--steps", "1", "--max-docs", "6", "--heldout-docs", "3",
                         "--out", tmp_path / "trained")
    assert code == 0, err
    meta = json.loads((tmp_path / "trained" / "lens.json").read_text())
    in_memory = meta["metrics"]["heldout_kl"]
    assert meta["metrics"]["dataset_source"]["text_column"] == "body" and meta["metrics"]["heldout_docs"] == 3
    assert all(in_memory[k]["tuned_lens"] < in_memory[k]["logit_lens"] for k in ("3", "12"))
    tl = _tuned_lens_only(tmp_path / "trained", tmp_path / "tuned-lens")
    code, out, err = cli("lens", "--dataset", held, "--tuned", tl, "--layers", "3,12", "--out", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "lens_kl.json").read_text()) == in_memory
    assert "note" not in out + err  # its unembed_hash is SmolLM2's: no doubt raised

    # a checkpoint of another model's name and unembedding is read with a note; another shape is refused
    lens = TunedLens.load(tl)
    lens.model_name, lens.unembed_hash = "EleutherAI/pythia-160m", "0" * 64
    assert lens.check_model(smollm2, "--tuned x") == [
        "--tuned x: a tuned-lens checkpoint for 'EleutherAI/pythia-160m', read on smollm2-135m (its unembed_hash "
        "differs from this model's)"]
    lens.source_format = "interp-lab"
    with pytest.raises(UsageError, match="a lens trained on EleutherAI/pythia-160m, not smollm2-135m"):
        lens.check_model(smollm2, "--tuned x")
    with pytest.raises(UsageError, match="a lens of 4 layers of width 8; smollm2-135m has 30 of width 576"):
        _random_lens().check_model(smollm2, "--tuned x")
