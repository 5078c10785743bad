"""Checkpoints move both ways between interp-lab and SAE Lens (and sparsify checkpoints load): for every
architecture, SAE Lens's ``load_from_disk`` reads what interp-lab trains and encodes / decodes the same."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sae_lens = pytest.importorskip("sae_lens")

from sae_common import ARCHS, arch_id  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from interp_lab.errors import InputError  # noqa: E402
from interp_lab.sae.checkpoint import load_sae, save_sae  # noqa: E402
from interp_lab.sae.data import split_rows  # noqa: E402

SPARSIFY = Path(__file__).parent / "data" / "sparsify"
EXPECTED_ARCH = {"topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu", "relu": "standard",
                 "batchtopk-transcoder": "jumprelu_transcoder", "relu-transcoder": "transcoder"}


@pytest.fixture(scope="module")
def store(sae_store):
    return sae_store


@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_saelens_loads_what_we_train_and_encodes_the_same(arch, trained_archs, store, tmp_path):
    res, hook, hook_out = trained_archs[arch_id(arch)]
    meta = {"model_name": "smollm2-135m", "hook_name": hook, "context_size": 128, "prepend_bos": False,
            **({"hook_name_out": hook_out} if hook_out else {})}
    path = save_sae(res.sae, tmp_path / "sae", scale_in=res.scale_in, scale_out=res.scale_out, metadata=meta)
    theirs = sae_lens.SAE.load_from_disk(str(path))
    assert theirs.cfg.architecture() == EXPECTED_ARCH[arch_id(arch)]
    # SAE Lens reads the metadata as written (a v6 config), not rebuilt from a pre-6.0 layout
    meta = theirs.cfg.metadata
    assert (meta.hook_name, meta.hook_name_out, meta.model_name) == (hook, hook_out, "smollm2-135m")
    assert (meta.context_size, meta.prepend_bos, meta.hook_head_index) == (128, False, None)
    ours = load_sae(path)
    held = split_rows(store).heldout
    x = torch.from_numpy(store.acts(hook, held).astype(np.float32))
    y = x if hook_out is None else torch.from_numpy(store.acts(hook_out, held).astype(np.float32))
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), ours.encode(x)
        recon = theirs.decode(z_theirs)
    # the same latents: the same set fires, and the values agree
    assert ((z_theirs > 0) != (z_ours > 0)).float().mean() < 1e-4
    assert torch.allclose(z_theirs, z_ours, atol=1e-4, rtol=1e-3)
    assert torch.allclose(recon, ours.decode(z_ours), atol=1e-3, rtol=1e-3)
    fvu = float((y - recon).double().pow(2).sum() / (y.double() - y.double().mean(0)).pow(2).sum())
    assert fvu < (0.5 if arch == ("topk", None) else 1.0), fvu  # with SAE Lens's own encode / decode


def _same_latents(theirs, ours, x):
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), ours.encode(x)
    assert (z_ours > 0).any() and ((z_theirs > 0) != (z_ours > 0)).float().mean() < 1e-4
    assert torch.allclose(z_theirs, z_ours, atol=1e-4, rtol=1e-3)


def test_saelens_reads_the_metadata_train_sae_writes(store, tmp_path):
    """A checkpoint as train_sae writes it: SAE Lens's load_from_disk gets the hook, model, context and data
    it was trained on (and our own model_revision), and encodes real activations as we do."""
    from sae_common import HOOK

    from interp_lab.api.sae import train_sae
    from interp_lab.sae.config import TrainConfig

    res = train_sae(out=tmp_path / "sae", store=store.root, hook=HOOK, evaluate=False,
                    config=TrainConfig(expansion_factor=1, k=8, tokens=2048, batch_size=256))
    theirs = sae_lens.SAE.load_from_disk(str(res.path))
    meta = theirs.cfg.metadata
    assert (meta.hook_name, meta.model_name, meta.context_size, meta.prepend_bos) == (HOOK, "smollm2-135m", 128, False)
    assert (meta.dataset_path, tuple(meta.seqpos_slice), meta.hook_head_index) == ("lee", (1, None), None)
    assert meta.model_revision == store.manifest.revision and meta.sae_lens_version.startswith("6.")
    assert meta.sae_lens_training_version is None and meta.model_from_pretrained_kwargs == {}
    x = torch.from_numpy(store.acts(HOOK, split_rows(store).heldout[:2000]).astype(np.float32))
    _same_latents(theirs, load_sae(res.path), x)


COMMITTED = Path(__file__).resolve().parents[1] / "examples" / "sae-l15" / "checkpoint"


def test_the_committed_checkpoint_loads_in_saelens_with_its_metadata(store):
    """examples/sae-l15/checkpoint, re-saved with v6 metadata: its weights are the trained ones (same bytes),
    SAE Lens names its hook and model, and encodes SmolLM2's layer-15 activations as we do."""
    import hashlib

    from sae_common import HOOK

    weights = (COMMITTED / "sae_weights.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == "c4530f660b21f54005ba7c6a7fc165379ca43d9a2c462ec9c37d1c62baf285fe"
    theirs = sae_lens.SAE.load_from_disk(str(COMMITTED))
    meta = theirs.cfg.metadata
    assert (meta.hook_name, meta.model_name, meta.context_size, meta.dataset_path) == \
        (HOOK, "smollm2-135m", 128, "lee+enwiki")
    assert meta.model_revision == store.manifest.revision  # the model the test store was harvested from
    x = torch.from_numpy(store.acts(HOOK, split_rows(store).heldout[:2000]).astype(np.float32))
    _same_latents(theirs, load_sae(COMMITTED), x)


def test_hooked_sae_transformer_attaches_our_sae_at_its_hook(tmp_path):
    """What the lost metadata broke: SAE Lens's HookedSAETransformer.add_sae places an SAE by its hook_name."""
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig

    from interp_lab.sae.base import SAEConfig, make_sae

    tl = HookedSAETransformer(HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=8, d_head=4, n_heads=4,
                                                      d_vocab=50, act_fn="relu", d_mlp=32, seed=0))
    ours = make_sae(SAEConfig(architecture="topk", d_in=16, d_sae=32, k=4), torch.Generator().manual_seed(0))
    save_sae(ours, tmp_path / "sae", metadata={"model_name": "tiny", "hook_name": "blocks.1.hook_resid_pre",
                                               "context_size": 8, "prepend_bos": False})
    tl.add_sae(sae_lens.SAE.load_from_disk(str(tmp_path / "sae")))
    tokens = torch.tensor([[1, 2, 3, 4, 5]])
    _, cache = tl.run_with_cache(tokens)
    z = cache["blocks.1.hook_resid_pre.hook_sae_acts_post"]
    assert z.shape == (1, 5, 32) and 0 < int((z[0] > 0).sum(-1).max()) <= 4
    tl.reset_saes()
    with torch.no_grad():
        clean = tl.run_with_cache(tokens, names_filter="blocks.1.hook_resid_pre")[1]["blocks.1.hook_resid_pre"]
        assert torch.allclose(z[0], ours.encode(clean[0]), atol=1e-5)  # our latents of the residual there


def test_older_checkpoints_still_name_their_hook(tmp_path):
    """Checkpoints written before the v6 metadata (ours, with no sae_lens_version) and pre-6.0 SAE Lens configs
    (the hook at the top level, as hook_point) keep telling interp-lab their hook."""
    from interp_lab.sae.base import SAEConfig, make_sae
    from interp_lab.sae.space import latent_space

    sae = make_sae(SAEConfig(architecture="relu", d_in=8, d_sae=16), torch.Generator().manual_seed(0))
    path = save_sae(sae, tmp_path / "old", metadata={"hook_name": "blocks.2.hook_resid_post", "model_name": "m"})
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["metadata"]["sae_lens_version"] == "6.0.0" and cfg["metadata"]["model_name"] == "m"
    cfg["metadata"] = {"hook_name": "blocks.2.hook_resid_post", "model_name": "m"}  # as interp-lab wrote it before
    (path / "cfg.json").write_text(json.dumps(cfg))
    assert latent_space(path).hook == "blocks.2.hook_resid_post"
    legacy = {k: v for k, v in cfg.items() if k != "metadata"} | {"hook_point": "blocks.3.hook_resid_post",
                                                                  "model_name": "gpt2", "hook_point_head_index": None}
    (path / "cfg.json").write_text(json.dumps(legacy))
    space = latent_space(path)
    assert (space.hook, space.layer, space.sae.cfg.d_sae) == ("blocks.3.hook_resid_post", 3, 16)


SAELENS_CFGS = {
    "standard": {},
    "topk": {"k": 6},
    "jumprelu": {},
    "transcoder": {"d_out": 12, "apply_b_dec_to_input": False},
    "jumprelu_transcoder": {"d_out": 12, "apply_b_dec_to_input": False},
}


@pytest.mark.parametrize("arch", list(SAELENS_CFGS))
def test_we_load_what_saelens_saves(arch, tmp_path):
    cfg = {"architecture": arch, "d_in": 16, "d_sae": 40, "dtype": "float32", "device": "cpu",
           "metadata": {"hook_name": "blocks.3.hook_resid_post"}, **SAELENS_CFGS[arch]}
    theirs = sae_lens.SAE.from_dict(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if name == "threshold" else 0.5))
            if name == "threshold":
                p.abs_()
    theirs.save_model(tmp_path / "c")
    ours = load_sae(tmp_path / "c")
    x = torch.randn(200, 16, generator=g)
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), ours.encode(x)
        assert (z_theirs > 0).sum() > 0 and torch.allclose(z_theirs, z_ours, atol=1e-5)
        assert torch.allclose(theirs.decode(z_theirs), ours.decode(z_ours), atol=1e-5)


@pytest.mark.parametrize("name", ["sae", "transcoder"])
def test_we_load_sparsify_checkpoints(name):
    """Checkpoints written by EleutherAI sparsify 1.3.3 (tests/data/sparsify/make_fixture.py), with its own
    encode / decode of fixed inputs."""
    expected = load_file(str(SPARSIFY / "expected.safetensors"))
    coder = load_sae(SPARSIFY / name)
    assert coder.cfg.d_sae == 48 and coder.cfg.k == 5 and coder.cfg.transcoder == (name == "transcoder")
    with torch.no_grad():
        z = coder.encode(expected["x"])
        assert torch.equal(z > 0, expected[f"{name}.latents"] > 0)
        assert torch.allclose(z, expected[f"{name}.latents"], atol=1e-6)
        assert torch.allclose(coder.decode(z), expected[f"{name}.recon"], atol=1e-5)


def test_unsupported_checkpoints_say_which_field(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"activation": "groupmax", "k": 4, "d_in": 8, "num_latents": 16}))
    (tmp_path / "sae.safetensors").write_bytes((SPARSIFY / "sae" / "sae.safetensors").read_bytes())
    with pytest.raises(InputError, match="activation"):
        load_sae(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 16, "d_sae": 48, "k": 5,
                                                   "normalize_activations": "layer_norm"}))
    with pytest.raises(InputError, match="normalize_activations"):
        load_sae(tmp_path)
